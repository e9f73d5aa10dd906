"""Train → export → ``rpt.load`` → predict reproduces what training logged for the checkpoint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict
from safetensors.torch import load_file

import rpt
from rpt.data.readers import read_jsonl
from tests.helpers import compose_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cb_run(tmp_path_factory, data_dir_module: Path) -> Path:
    """One epoch of tiny T5 on 64 CB examples, in-process, as ``python -m rpt.train`` runs it."""
    from rpt.train import train

    run_dir = tmp_path_factory.mktemp("cb_run")
    cfg = compose_config(
        [
            "model=tiny_t5",
            "task=cb",
            "prompt=residual_mlp2",
            "trainer=cpu",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "data.max_train_examples=64",  # one short epoch: the round trip, not learning, is tested
            "logger=csv",
            f"data.dir={data_dir_module}",
        ]
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    train(cfg)
    return run_dir


def logged_val_scores(run_dir: Path) -> list[float]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return [float(r["val/score"]) for r in csv.DictReader(f) if r.get("val/score")]


def test_export_reproduces_the_logged_validation_score(cb_run: Path, data_dir_module: Path) -> None:
    export = cb_run / "export"
    meta = json.loads((export / "rpt.json").read_text())
    (logged,) = logged_val_scores(cb_run)  # one epoch: the best checkpoint's validation
    assert meta["metrics"]["val/score_best"] == pytest.approx(logged, abs=1e-6)

    predictor = rpt.load(export, device="cpu")
    records = [record for _, record in read_jsonl(data_dir_module / "CB" / "val.jsonl")]
    metrics = predictor.evaluate(records)
    assert metrics["score"] == pytest.approx(logged, abs=1e-6)
    texts = predictor.predict(records)
    assert len(texts) == 56 and set(texts) <= {"entailment", "contradiction", "neutral"}


def test_export_cli_rewrites_the_same_prompt_from_the_run(cb_run: Path, tmp_path: Path) -> None:
    from rpt.export import main

    main([str(cb_run), str(tmp_path / "again")])
    again = load_file(str(tmp_path / "again" / "prompt.safetensors"))["prompt"]
    assert torch.equal(again, load_file(str(cb_run / "export" / "prompt.safetensors"))["prompt"])
    meta = json.loads((tmp_path / "again" / "rpt.json").read_text())
    assert meta["source"]["checkpoint"].endswith("best.ckpt")
    assert meta["metrics"]["val/score_best"] == pytest.approx(
        logged_val_scores(cb_run)[0], abs=1e-6
    )
    assert (tmp_path / "again" / "peft" / "adapter_model.safetensors").is_file()
