"""``trainer=ddp_cpu``: two gloo processes launched by Lightning from ``python -m rpt.train``.

The validation set has an odd size (15), so the distributed sampler pads rank 1's share with a
repeat of an example; the metrics must still count each example once, i.e. equal a single
process's metrics for the same weights. One run folder, one export, written by rank 0.
"""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from rpt.module import PromptTuningModule
from tests.helpers import build_datamodule, compose_config, run_module

pytestmark = pytest.mark.integration


def test_ddp_cpu_metrics_equal_single_process_and_only_rank_0_writes(tmp_path, data_dir):
    data = tmp_path / "data" / "CB"
    data.mkdir(parents=True)
    for split, n in (("train", 40), ("val", 15)):
        lines = (data_dir / "CB" / f"{split}.jsonl").read_text().splitlines()[:n]
        (data / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    work = tmp_path / "work"
    work.mkdir()
    overrides = [
        "model=tiny_t5",
        "task=cb",
        "prompt=residual_mlp2",
        "trainer=ddp_cpu",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "logger=csv",
        f"data.dir={tmp_path / 'data'}",
        "data.eval_batch_size=1",  # no padding inside a batch: DDP and one process compute alike
        f"paths.log_dir={work / 'outputs'}",  # the run folder's name comes from Hydra (${now:...})
    ]
    result = run_module("rpt.train", *overrides, cwd=work)

    # One run folder, shared by both processes; rank 0 alone writes the config, export and report.
    assert sorted(p.name for p in work.iterdir()) == ["outputs"]
    (run,) = (work / "outputs" / "runs" / "cb" / "residual_mlp2").iterdir()
    assert sorted(p.name for p in run.iterdir()) == [
        ".hydra",
        "checkpoints",
        "csv",
        "export",
        "train.log",
        "train_ddp_process_1.log",
    ]
    assert (result.stdout + result.stderr).count("[rpt] export:") == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]

    # The same weights, validated by one process on the same 15 examples.
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    module = PromptTuningModule(best["hyper_parameters"]["cfg"])
    module.load_state_dict(best["state_dict"], strict=False)
    cfg = compose_config(
        ["model=tiny_t5", "task=cb", f"data.dir={tmp_path / 'data'}", "data.eval_batch_size=1"]
    )
    datamodule = build_datamodule(module, cfg)
    assert len(datamodule.split_examples("val")) == 15
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    (single,) = trainer.validate(module, datamodule=datamodule, verbose=False)
    ddp = json.loads((run / "export" / "rpt.json").read_text())["metrics"]
    for name in ("val/accuracy", "val/f1_macro", "val/score"):
        assert ddp[name] == single[name], (name, ddp[name], single[name])
