"""The benchmark harness still runs end to end (on tiny models and the hand-written fixture data).

These are not timings: ``benchmarks/`` measures speed, and nothing here asserts one. They catch
the harness breaking silently when the code it drives changes (nothing else runs it). Each runs
as users run it, ``python -m benchmarks.…`` in a process of its own: the harness sets the
process's thread count, which would change later tests' floating-point results.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers import run_module


@pytest.fixture
def run(fixture_data_dir: Path):
    # The harness reads its tasks from RPT_DATA_DIR; three hand-written CB examples suffice.
    env = {"RPT_DATA_DIR": str(fixture_data_dir)}

    def run(module: str, *args: str) -> None:
        run_module(f"benchmarks.{module}", *args, cwd=REPO, env=env)

    return run


def test_train_throughput_runs_every_row_on_every_family(run, tmp_path) -> None:
    for backbone in ("tiny_bert", "tiny_t5"):
        out = tmp_path / f"{backbone}.json"
        run(
            "train_throughput",
            *("--backbone", backbone, "--tasks", "cb", "--batches", "1", "--repeats", "1"),
            *("--batch-size", "2", "--json", str(out)),
        )
        rows = json.loads(out.read_text())["results"][0]["rows"]
        assert {"rpt", "rpt_residual", "rpt_grouped", "peft", "bound", "padded"} <= set(rows)
        assert all(r["cpu_rate"] > 0 for r in rows.values())
    out = tmp_path / "tiny_gpt2.json"  # decoder-only: no padded row (the original is T5-only)
    run(
        "train_throughput",
        *("--backbone", "tiny_gpt2", "--tasks", "cb", "--rows", "rpt,peft,bound"),
        *("--batches", "1", "--repeats", "1", "--batch-size", "2", "--json", str(out)),
    )
    assert set(json.loads(out.read_text())["results"][0]["rows"]) == {"rpt", "peft", "bound"}


def test_eval_levers_padding_and_checkpoint_size_run(run, tmp_path) -> None:
    for backbone in ("tiny_t5", "tiny_gpt2"):  # tiny_gpt2 adds the rank_full_rows row
        run(
            "eval_throughput",
            *("--backbone", backbone, "--tasks", "cb", "--batches", "1", "--repeats", "1"),
        )
    run(
        "levers",
        *("--backbone", "tiny_t5", "--task", "cb", "--levers", "quiet,checkpointing"),
        *("--batches", "1", "--batch-size", "2", "--repeats", "1"),
    )
    run("padding", "--backbone", "tiny_bert", "--tasks", "cb")
    out = tmp_path / "ckpt.json"
    run("checkpoint_size", "--backbones", "tiny_bert", "--prompts", "none", "--json", str(out))
    assert json.loads(out.read_text())
