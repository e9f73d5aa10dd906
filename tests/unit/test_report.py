"""rpt.report's aggregation on synthetic run folders laid out as rpt.train writes them."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import pytest
import yaml

from rpt import report


def make_run(
    root: Path,
    name: str,
    *,
    task: str = "cb",
    prompt: str = "residual_mlp1",
    seed: int = 0,
    score: float | None = 0.5,
    lr: float = 0.3,
    length: int = 10,
    bottleneck: int | None = 800,
    curve: list[float] | None = None,
    trainable: int | None = 1234,
    extra_metrics: dict[str, float] | None = None,
) -> Path:
    """A run folder: .hydra/config.yaml, export/rpt.json (when ``score`` is given), csv/metrics.csv."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    net = (
        {"_target_": "rpt.prompts.PlainPrompt"}
        if bottleneck is None
        else {"_target_": "rpt.prompts.ResidualMLPPrompt", "bottleneck": bottleneck}
    )
    config = {
        "model": {"name": "tiny_t5", "max_length": 128},
        "task": {"name": task},
        "prompt": {"name": prompt, "length": length, "net": net},
        "optimizer": {"lr": lr, "betas": [0.9, 0.999]},
        "trainer": {"max_epochs": 2, "default_root_dir": "${paths.output_dir}"},
        "logger": {"name": f"{task}-{prompt}-seed{seed}"},
        "paths": {"output_dir": "${hydra:runtime.output_dir}"},
        "data": {"dir": f"/somewhere/{name}"},
        "seed": seed,
        "data_seed": 0,
    }
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    if score is not None:
        (run / "export").mkdir()
        meta = {
            "task": {"name": task},
            "prompt": {"name": prompt},
            "seed": seed,
            "metrics": {"val/score_best": score, **(extra_metrics or {})},
        }
        if trainable is not None:
            meta["trainable_parameters"] = trainable
        (run / "export" / "rpt.json").write_text(json.dumps(meta))
    if curve:
        (run / "csv").mkdir()
        with open(run / "csv" / "metrics.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["epoch", "step", "train/loss", "val/score", "val/score_best"])
            best = -math.inf
            for epoch, value in enumerate(curve):
                writer.writerow([epoch, 10 * epoch + 5, 1.0, "", ""])  # a training row
                best = max(best, value)
                writer.writerow([epoch, 10 * epoch + 9, "", value, best])
    return run


def read_summary(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(out / "summary.csv") as f:
        return {(r["task"], r["method"]): r for r in csv.DictReader(f)}


@pytest.fixture
def seed_study(tmp_path: Path) -> Path:
    """2 tasks × 2 prompts × 3 seeds, as a multirun folder."""
    root = tmp_path / "multirun"
    job = 0
    for task in ("cb", "rte"):
        for prompt, bottleneck, trainable in (("none", None, 320), ("residual_mlp1", 800, 52416)):
            for seed in range(3):
                score = (
                    0.4
                    + 0.1 * seed
                    + (0.05 if prompt == "none" else 0.0)
                    + (0.01 if task == "rte" else 0.0)
                )
                curve = [score - 0.1, score, score - 0.02]
                make_run(
                    root,
                    f"{job}_{task}_{prompt}_seed{seed}",
                    task=task,
                    prompt=prompt,
                    seed=seed,
                    score=score,
                    bottleneck=bottleneck,
                    curve=curve,
                    trainable=trainable,
                )
                job += 1
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def test_seed_study_table_matches_hand_computed_numbers(seed_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = report.write_report([seed_study], out)
    summary = read_summary(out)
    assert set(summary) == {(t, p) for t in ("cb", "rte") for p in ("none", "residual_mlp1")}
    for (task, method), row in summary.items():
        values = [
            0.4 + 0.1 * s + (0.05 if method == "none" else 0.0) + (0.01 if task == "rte" else 0.0)
            for s in range(3)
        ]
        assert int(row["n"]) == 3
        assert float(row["mean"]) == pytest.approx(statistics.fmean(values), abs=1e-12)
        assert float(row["std"]) == pytest.approx(statistics.stdev(values), abs=1e-12)
        assert float(row["min"]) == pytest.approx(min(values)) and float(
            row["max"]
        ) == pytest.approx(max(values))
        assert row["seeds"] == "0, 1, 2"
        assert row["trainable_parameters"] == ("320" if method == "none" else "52416")
    text = result["report"].read_text()
    # Plain prompt tuning first; the Markdown shows 4 decimals of the same numbers.
    assert "| none | 3 | 0.5500 ± 0.1000 | 0.4500 | 0.6500 | 320 | 0, 1, 2 |" in text
    assert text.index("| none |") < text.index("| residual_mlp1 |")
    names = sorted(p.name for p in result["figures"])
    assert names == ["cb_curves.png", "cb_seeds.png", "rte_curves.png", "rte_seeds.png"]
    for p in result["figures"]:
        assert p.stat().st_size > 5000 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # No hyper-parameter besides the seed varies, so method == prompt.
    assert {r.method for r in result["runs"]} == {"none", "residual_mlp1"}


def test_unfinished_runs_are_skipped_and_listed(tmp_path: Path) -> None:
    root = tmp_path / "mr"
    make_run(root, "0_cb_none_seed0", prompt="none", seed=0, score=0.5, bottleneck=None)
    make_run(
        root, "1_cb_none_seed1", prompt="none", seed=1, score=None, bottleneck=None
    )  # crashed: no export
    result = report.write_report([root], tmp_path / "out", plots=False)
    assert [r.seed for r in result["runs"]] == [0]
    assert [Path(s.source).name for s in result["skipped"]] == ["1_cb_none_seed1"]
    assert "1_cb_none_seed1: no finite val/score_best" in result["report"].read_text()


def test_metric_option_and_csv_fallback(tmp_path: Path) -> None:
    root = tmp_path / "mr"
    make_run(root, "a", seed=0, score=0.5, curve=[0.3, 0.5], extra_metrics={"val/accuracy": 0.7})
    make_run(root, "b", seed=1, score=0.6, curve=[0.6, 0.1], extra_metrics={"val/accuracy": 0.9})
    result = report.write_report([root], tmp_path / "out", metric="val/accuracy", plots=False)
    assert read_summary(tmp_path / "out")[("cb", "residual_mlp1")]["mean"] == repr(
        statistics.fmean([0.7, 0.9])
    )
    # A metric only the CSV has: its last logged value (train/loss is 1.0 in every row here).
    result = report.write_report([root], tmp_path / "out2", metric="train/loss", plots=False)
    assert [r.metrics["train/loss"] for r in result["runs"]] == [1.0, 1.0]


def test_differing_hyperparameters_name_the_method_and_get_plots(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    scores = {}
    job = 0
    for lr in (0.03, 0.3):
        for length in (10, 100):
            for seed in (0, 1):
                scores[(lr, length, seed)] = 0.3 + lr + length / 1000 + seed / 100
                make_run(
                    root,
                    f"{job}",
                    seed=seed,
                    lr=lr,
                    length=length,
                    score=scores[(lr, length, seed)],
                    curve=[0.2, 0.3],
                )
                job += 1
    # plain prompt tuning at one lr and length: for it, nothing besides the seed varies
    make_run(root, "p0", prompt="none", bottleneck=None, seed=0, score=0.1)
    make_run(root, "p1", prompt="none", bottleneck=None, seed=1, score=0.2)
    out = tmp_path / "out"
    result = report.write_report([root], out)
    summary = read_summary(out)
    methods = [m for (_, m) in summary]
    assert methods == [
        "none lr=0.3 length=10",
        "residual_mlp1 lr=0.03 length=10",
        "residual_mlp1 lr=0.03 length=100",
        "residual_mlp1 lr=0.3 length=10",
        "residual_mlp1 lr=0.3 length=100",
    ]
    row = summary[("cb", "residual_mlp1 lr=0.03 length=100")]
    assert float(row["mean"]) == pytest.approx(
        statistics.fmean([scores[(0.03, 100, s)] for s in (0, 1)])
    )
    names = {p.name for p in result["figures"]}
    assert {
        "cb_vs_optimizer_lr.png",
        "cb_vs_prompt_length.png",
        "cb_seeds.png",
        "cb_curves.png",
    } <= names


def test_ignore_keeps_a_key_out_of_the_method(tmp_path: Path) -> None:
    root = tmp_path / "mr"
    make_run(root, "a", seed=0, lr=0.3, score=0.5)
    make_run(root, "b", seed=1, lr=0.1, score=0.7)
    result = report.write_report([root], tmp_path / "out", ignore=["optimizer.lr"], plots=False)
    (row,) = result["tables"]["cb"]
    assert row.method == "residual_mlp1" and row.n == 2 and row.mean == pytest.approx(0.6)


def test_a_key_added_by_a_later_version_does_not_split_a_method(tmp_path: Path) -> None:
    # Runs written before train.backbone_dropout existed pool with runs that have its default;
    # the report says so. Runs that disagree on the key still split.
    root = tmp_path / "mr"
    make_run(root, "old", seed=0, score=0.5)
    new = make_run(root, "new", seed=1, score=0.7)
    config = yaml.safe_load((new / ".hydra" / "config.yaml").read_text())
    config["train"] = {"backbone_dropout": False}
    (new / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    result = report.write_report([root], tmp_path / "out", plots=False)
    (row,) = result["tables"]["cb"]
    assert row.method == "residual_mlp1" and row.n == 2
    assert "lack train.backbone_dropout (the others: False)" in result["report"].read_text()

    other = make_run(root, "other", seed=2, score=0.9)
    config["train"] = {"backbone_dropout": True}
    (other / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    result = report.write_report([root], tmp_path / "out2", plots=False)
    assert sorted(r.method for r in result["tables"]["cb"]) == [
        "residual_mlp1",
        "residual_mlp1 backbone_dropout=False",
        "residual_mlp1 backbone_dropout=True",
    ]


def test_single_run_folder_and_duplicate_paths(tmp_path: Path) -> None:
    run = make_run(tmp_path, "one", seed=3, score=0.42)
    result = report.write_report([run, tmp_path], tmp_path / "out", plots=False)
    (row,) = result["tables"]["cb"]
    assert row.n == 1 and row.values == [0.42] and math.isnan(row.std)
    assert (
        "| residual_mlp1 | 1 | 0.4200 ± – | 0.4200 | 0.4200 | 1,234 | 3 |"
        in result["report"].read_text()
    )


def test_wandb_csv_export(tmp_path: Path) -> None:
    table = tmp_path / "wandb_export.csv"
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Name", "State", "cfg.optimizer.lr", "val/score_best", "train/loss"])
        writer.writerow(["rte-none-seed0", "finished", "0.3", "0.61", "0.5"])
        writer.writerow(["rte-none-seed1", "finished", "0.3", "0.55", "0.5"])
        writer.writerow(["rte-residual_mlp1-seed0", "finished", "0.3", "0.70", "0.5"])
        writer.writerow(["rte-residual_mlp1-seed1", "crashed", "0.3", "", "0.5"])
        writer.writerow(
            ["rte-residual_mlp1-seed2", "running", "0.3", "0.9", "0.5"]
        )  # partial summary
    result = report.write_report([table], tmp_path / "out", plots=False)
    rows = {r.method: r for r in result["tables"]["rte"]}
    assert rows["none"].values == [0.61, 0.55] and rows["none"].seeds == [0, 1]
    assert rows["residual_mlp1"].n == 1
    assert [(s.source, s.reason) for s in result["skipped"]] == [
        (f"{table}:5", "wandb state 'crashed'"),
        (f"{table}:6", "wandb state 'running'"),
    ]
    assert report.default_out(table) == tmp_path / "wandb_export_report"


def test_cli_prints_where_files_went(seed_study: Path, capsys) -> None:
    assert report.main([str(seed_study), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert (
        str(seed_study / "report" / "report.md") in printed and "| residual_mlp1 | 3 |" in printed
    )


def test_cli_names_an_empty_folder(tmp_path: Path, capsys) -> None:
    assert report.main([str(tmp_path)]) == 2
    assert "no run folders" in capsys.readouterr().err


def test_a_key_only_some_prompts_have_still_gets_its_plot(tmp_path: Path) -> None:
    root = tmp_path / "mr"
    make_run(root, "p0", prompt="none", bottleneck=None, seed=0, score=0.4)
    make_run(root, "p1", prompt="none", bottleneck=None, seed=1, score=0.5)
    make_run(root, "r0", bottleneck=100, seed=0, score=0.6)
    make_run(root, "r1", bottleneck=800, seed=0, score=0.7)
    result = report.write_report([root], tmp_path / "out")
    assert [r.method for r in result["tables"]["cb"]] == [
        "none",
        "residual_mlp1 bottleneck=100",
        "residual_mlp1 bottleneck=800",
    ]
    assert (tmp_path / "out" / "cb_vs_prompt_net_bottleneck.png").is_file()
    assert [r.prompt for r in report.numeric_runs(result["runs"], "prompt.net.bottleneck")] == [
        "residual_mlp1"
    ] * 2
