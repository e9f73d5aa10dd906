"""``python -m rpt.predict``: SuperGLUE submission files from an export, checked line by line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rpt.data.readers import read_jsonl
from rpt.export import write_export
from rpt.predict import main
from tests.helpers import build_module

pytestmark = pytest.mark.integration


def make_export(path: Path, task: str) -> Path:
    """An untrained tiny-T5 export: the file format, not the accuracy, is under test."""
    module = build_module(["model=tiny_t5", f"task={task}", "prompt=residual_mlp1"]).eval()
    return write_export(module, path)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def cb_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("cb_run")
    make_export(run_dir / "export", "cb")
    return run_dir


def test_cb_test_submission_has_one_valid_line_per_example(
    cb_run: Path, data_dir_module: Path, capsys
) -> None:
    main(
        [
            "export=" + str(cb_run / "export"),
            "task=cb",
            "split=test",
            f"data={data_dir_module}",
            "device=cpu",
        ]
    )
    out = cb_run / "export" / "predictions" / "CB.jsonl"  # the default output folder
    assert str(out) in capsys.readouterr().out
    lines = read_lines(out)
    official = [record["idx"] for _, record in read_jsonl(data_dir_module / "CB" / "test.jsonl")]
    assert len(lines) == len(official) == 250
    assert [line["idx"] for line in lines] == official
    assert all(set(line) == {"idx", "label"} for line in lines)
    assert {line["label"] for line in lines} <= {"entailment", "contradiction", "neutral"}
    assert not (out.parent / "CB.metrics.json").exists()  # the test split is unlabeled


def test_run_folder_and_val_split_give_metrics_and_scores(
    cb_run: Path, data_dir_module: Path, tmp_path: Path
) -> None:
    main(
        [
            f"run={cb_run}",
            "split=val",
            f"data={data_dir_module}",
            f"out={tmp_path}",
            "scores=true",
            "device=cpu",
        ]
    )
    metrics = json.loads((tmp_path / "CB.val.metrics.json").read_text())
    assert set(metrics) == {"accuracy", "f1_macro", "score"}
    assert len(read_lines(tmp_path / "CB.val.jsonl")) == 56
    scores = read_lines(tmp_path / "CB.val.scores.jsonl")
    assert len(scores) == 56
    for row in scores:
        assert (
            len(row["scores"]) == 3
            and row["prediction"] == row["choices"][row["scores"].index(max(row["scores"]))]
        )


def test_multirc_nested_submission_from_an_input_file(
    data_dir_module: Path, tmp_path: Path
) -> None:
    # The first paragraphs of the official test file (the whole file is 9,693 answers: minutes on
    # a shared 2-core machine, and the format is the same for every paragraph).
    lines = (data_dir_module / "MultiRC" / "test.jsonl").read_text().splitlines()[:2]  # 97 answers
    subset = tmp_path / "multirc_part.jsonl"
    subset.write_text("\n".join(lines) + "\n")
    export = make_export(tmp_path / "export", "multirc")
    main(
        [
            f"export={export}",
            f"input={subset}",
            f"out={tmp_path / 'out'}",
            "mode=rank",
            "device=cpu",
        ]
    )
    written = read_lines(tmp_path / "out" / "MultiRC.multirc_part.jsonl")
    records = [json.loads(line) for line in lines]
    assert [w["idx"] for w in written] == [r["idx"] for r in records]
    for got, record in zip(written, records):
        questions = record["passage"]["questions"]
        assert [q["idx"] for q in got["passage"]["questions"]] == [q["idx"] for q in questions]
        for got_q, q in zip(got["passage"]["questions"], questions):
            assert [a["idx"] for a in got_q["answers"]] == [a["idx"] for a in q["answers"]]
            assert all(
                a["label"] in (0, 1) and set(a) == {"idx", "label"} for a in got_q["answers"]
            )


def test_help_and_argument_errors(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "--export" in help_text and "split=test" in help_text and "leaderboard" in help_text
    with pytest.raises(SystemExit) as exit_info:
        main(["task=cb"])
    assert exit_info.value.code == 2 and "export=DIR or run=RUN_DIR" in capsys.readouterr().err
