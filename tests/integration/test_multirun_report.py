"""A real multirun (2 prompts × 2 seeds, tiny T5 on CB) through the CLI, then `rpt.report` on it.

The report's numbers are checked against the runs' own files (export/rpt.json, csv/metrics.csv,
the checkpoints), read here directly and not through rpt.report.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration

PROMPTS = ("none", "residual_mlp1")
SEEDS = (0, 1)


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}
    # Tiny models gain nothing from a second thread; on a shared 2-core machine one is faster.
    env.setdefault("OMP_NUM_THREADS", "1")
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert result.returncode == 0, (
        f"{' '.join(args)}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-5000:]}"
    )
    return result


@pytest.fixture(scope="module")
def multirun(tmp_path_factory) -> Path:
    from tests.conftest import require_real_data_dir

    data = require_real_data_dir()
    sweep = tmp_path_factory.mktemp("multirun")
    run_cli(
        "-m", "rpt.train", "-m",
        "model=tiny_t5", "task=cb", f"prompt={','.join(PROMPTS)}", f"seed={','.join(map(str, SEEDS))}",
        "trainer=cpu", "trainer.max_epochs=2", "++trainer.limit_train_batches=2", "logger=csv",
        f"data.dir={data}", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    return sweep


def own_numbers(sweep: Path, metric: str) -> dict[str, list[float]]:
    """Per prompt, the metric of each run, read from the runs' export/rpt.json."""
    values: dict[str, list[float]] = {p: [] for p in PROMPTS}
    for meta_path in sorted(sweep.glob("*/export/rpt.json")):
        meta = json.loads(meta_path.read_text())
        values[meta["prompt"]["name"]].append(meta["metrics"][metric])
    return values


def table_rows(report_md: Path) -> dict[str, list[str]]:
    rows = {}
    for line in report_md.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in PROMPTS:
            rows[cells[0]] = cells
    return rows


@pytest.mark.parametrize("metric", ["val/score_best", "train/loss"])
def test_report_numbers_equal_the_runs_own(
    multirun: Path, tmp_path: Path, metric: str, capsys
) -> None:
    out = tmp_path / "report"
    args = [str(multirun), "--metric", metric, "--out", str(out)]
    if (
        metric == "val/score_best"
    ):  # the console command once; in-process otherwise (same code, faster)
        printed = run_cli("-m", "rpt.report", *args).stdout
    else:
        from rpt.report import main

        assert main(args) == 0
        printed = capsys.readouterr().out
    assert str(out / "report.md") in printed
    expected = own_numbers(multirun, metric)
    assert all(len(v) == len(SEEDS) for v in expected.values()), expected

    with open(out / "summary.csv") as f:
        summary = {r["method"]: r for r in csv.DictReader(f)}
    assert set(summary) == set(PROMPTS)
    rows = table_rows(out / "report.md")
    for prompt, values in expected.items():
        row = summary[prompt]
        mean, std = statistics.fmean(values), statistics.stdev(values)
        assert int(row["n"]) == len(values)
        assert float(row["mean"]) == pytest.approx(mean, rel=1e-12, abs=1e-15)
        assert float(row["std"]) == pytest.approx(std, rel=1e-9, abs=1e-15)
        assert float(row["min"]) == min(values) and float(row["max"]) == max(values)
        # The Markdown table shows the same numbers, rounded to 4 decimals.
        method, n, mean_std, low, high, _, seeds = rows[prompt]
        assert (n, mean_std, low, high) == (
            str(len(values)),
            f"{mean:.4f} ± {std:.4f}",
            f"{min(values):.4f}",
            f"{max(values):.4f}",
        )
        assert seeds == ", ".join(map(str, SEEDS))
    if metric == "train/loss":
        # Losses differ between seeds, so the spread above was a real one, not 0 == 0.
        assert all(float(summary[p]["std"]) > 0 for p in PROMPTS)


def test_report_trainable_parameters_and_files(multirun: Path, tmp_path: Path) -> None:
    from rpt.report import main

    out = tmp_path / "report"
    assert main([str(multirun), "--out", str(out)]) == 0
    with open(out / "summary.csv") as f:
        summary = {r["method"]: r for r in csv.DictReader(f)}
    for run_dir in sorted(p for p in multirun.iterdir() if (p / "export").is_dir()):
        meta = json.loads((run_dir / "export" / "rpt.json").read_text())
        state = torch.load(
            run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True
        )["state_dict"]
        count = sum(t.numel() for t in state.values())
        assert meta["trainable_parameters"] == count
        assert summary[meta["prompt"]["name"]]["trainable_parameters"] == str(count)
    assert (
        int(summary["residual_mlp1"]["trainable_parameters"])
        > int(summary["none"]["trainable_parameters"])
        == 10 * 32
    )

    for name in ("report.md", "summary.csv", "runs.csv", "cb_seeds.png", "cb_curves.png"):
        path = out / name
        assert path.is_file() and path.stat().st_size > 0, name
    assert (out / "cb_seeds.png").read_bytes()[:4] == b"\x89PNG"
    report_md = (out / "report.md").read_text()
    assert (
        "![cb: val/score_best per run](cb_seeds.png)" in report_md
        and "(cb_curves.png)" in report_md
    )


def test_curves_are_the_runs_validation_rows(multirun: Path) -> None:
    from rpt.report import load_run_dir

    for run_dir in sorted(p for p in multirun.iterdir() if (p / "csv").is_dir()):
        with open(run_dir / "csv" / "metrics.csv") as f:
            rows = [
                (int(r["epoch"]), float(r["val/score"]))
                for r in csv.DictReader(f)
                if r.get("val/score")
            ]
        assert [e for e, _ in rows] == [0, 1]  # max_epochs=2: one validation per epoch
        run = load_run_dir(run_dir)
        assert run.curve == rows and all(math.isfinite(v) for _, v in run.curve)


def test_optuna_search_runs_and_returns_val_score_best(tmp_path: Path) -> None:
    from tests.conftest import require_real_data_dir

    data = require_real_data_dir()
    sweep = tmp_path / "optuna"
    run_cli(
        "-m", "rpt.train", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2",
        "model=tiny_t5", "task=cb", "prompt=residual_mlp1", "trainer=cpu", "trainer.max_epochs=1",
        "++trainer.limit_train_batches=1", "++trainer.limit_val_batches=1", "logger=none", f"data.dir={data}", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    import yaml

    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    scores = [
        json.loads(p.read_text())["metrics"]["val/score_best"]
        for p in sweep.glob("*/export/rpt.json")
    ]
    assert len(scores) == 2
    # What Optuna maximised is what the runs exported as their best validation score.
    assert results["best_value"] == pytest.approx(max(scores))
    assert set(results["best_params"]) == {"optimizer.lr", "prompt.net.bottleneck", "prompt.length"}
