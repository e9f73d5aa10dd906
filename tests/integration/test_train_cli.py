"""`python -m rpt.train` as a user runs it, checked by what it wrote to disk."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import build_module, run_module

pytestmark = pytest.mark.integration


def run_train(run_dir: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return run_module("rpt.train", f"hydra.run.dir={run_dir}", *overrides, timeout=timeout)


@pytest.fixture(scope="module")
def cb_run(tmp_path_factory, data_dir_module) -> Path:
    run_dir = tmp_path_factory.mktemp("cb_run")
    run_train(
        run_dir,
        "model=tiny_t5",
        "task=cb",
        "prompt=residual_mlp2",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "logger=csv",
        f"data.dir={data_dir_module}",
    )
    return run_dir


def test_run_folder_has_config_checkpoints_and_export(cb_run: Path) -> None:
    assert (cb_run / ".hydra" / "config.yaml").is_file()
    assert (cb_run / "checkpoints" / "best.ckpt").is_file()
    assert (cb_run / "checkpoints" / "last.ckpt").is_file()
    export = cb_run / "export"
    prompt = load_file(str(export / "prompt.safetensors"))["prompt"]
    assert prompt.dtype == torch.float32 and prompt.shape == (10, 32)
    meta = json.loads((export / "rpt.json").read_text())
    assert meta["task"]["name"] == "cb" and meta["backbone"]["family"] == "seq2seq"
    assert "val/score" in meta["metrics"]
    with open(cb_run / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("val/score") for r in rows) and any(r.get("train/loss") for r in rows)


def test_checkpoint_is_trainable_parameters_only(cb_run: Path) -> None:
    checkpoint = torch.load(
        cb_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True
    )
    keys = set(checkpoint["state_dict"])
    assert keys and all(k.startswith("reparam.") for k in keys), keys
    module = build_module(["model=tiny_t5", "task=cb", "prompt=residual_mlp2"])
    assert (
        sum(checkpoint["state_dict"][k].numel() for k in keys) == module.num_trainable_parameters()
    )


def test_best_checkpoint_is_weights_only_and_last_keeps_the_optimizer(cb_run: Path) -> None:
    # best.ckpt feeds export and evaluation (save_weights_only); last.ckpt is for resume=true.
    folder = cb_run / "checkpoints"
    best = torch.load(folder / "best.ckpt", map_location="cpu", weights_only=True)
    last = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)
    assert not {"optimizer_states", "lr_schedulers", "callbacks"} & best.keys()
    assert {"optimizer_states", "callbacks"} <= last.keys() and last["optimizer_states"]
    assert "cfg" in best["hyper_parameters"] and "rpt_best_score" in best
    # fp32 trainable parameters (104,512 here: 408 KiB), plus config and loop state (~6 KiB)
    module = build_module(["model=tiny_t5", "task=cb", "prompt=residual_mlp2"])
    weights = 4 * module.num_trainable_parameters()
    size = (folder / "best.ckpt").stat().st_size
    assert weights <= size <= 1.3 * weights + 16 * 1024, (size, weights)


def test_export_equals_reparameterizer_output_of_best_checkpoint(cb_run: Path) -> None:
    from rpt.module import PromptTuningModule

    checkpoint = torch.load(
        cb_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True
    )
    module = PromptTuningModule(checkpoint["hyper_parameters"]["cfg"])
    before = module.computed_prompt()
    module.load_state_dict(checkpoint["state_dict"], strict=False)
    expected = module.computed_prompt()
    exported = load_file(str(cb_run / "export" / "prompt.safetensors"))["prompt"]
    assert not torch.equal(before, expected), "the checkpoint did not change the prompt"
    assert torch.equal(exported, expected)


def test_resume_from_last_checkpoint_continues(
    cb_run: Path, data_dir_module, tmp_path: Path
) -> None:
    resumed = tmp_path / "resumed"
    shutil.copytree(cb_run, resumed)
    first = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    run_train(
        resumed,
        "model=tiny_t5",
        "task=cb",
        "prompt=residual_mlp2",
        "trainer=cpu",
        "trainer.max_epochs=2",
        "logger=csv",
        f"data.dir={data_dir_module}",
        "resume=true",
    )
    second = torch.load(
        resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )
    # The second run did exactly one more epoch, starting from the first one's step count.
    assert second["global_step"] == 2 * first["global_step"] > 0
