"""Crash and resume, determinism, numerical faults, bad data and untrusted checkpoints, on real CB.

docs/reliability.md lists every fault tried here and what happens.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import open_dict
from safetensors.torch import load_file

import rpt.train
from rpt.backbones.seq2seq import Seq2SeqBackbone
from rpt.config import run_config
from rpt.module import PromptTuningModule
from rpt.resume import loader_state_in
from tests.helpers import build_datamodule, compose_config

pytestmark = pytest.mark.integration

QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
TINY = ["model=tiny_t5", "task=cb", "prompt=residual_mlp2", "trainer=cpu", "logger=none", *QUIET]


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def train_cmd(run_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "rpt.train", f"hydra.run.dir={run_dir}", *overrides]


def train_in_process(run_dir: Path, overrides: list[str]) -> dict:
    cfg = compose_config([*TINY, *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    return rpt.train.train(cfg)


def trainable(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- crash and resume ------------------------------------------------------------------------


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path, data_dir):
    """The real command, killed with SIGKILL after a mid-epoch checkpoint, resumed with resume=true.

    Dropout in the prompt network and a linear schedule make the RNG states and the scheduler
    part of what must be restored; 12 batches per epoch, ``last.ckpt`` every 3 steps.
    """
    overrides = [
        *TINY,
        f"data.dir={data_dir}",
        "data.max_train_examples=96",
        "trainer.limit_val_batches=1",
        "trainer.max_epochs=2",
        "prompt.net.dropout=0.1",
        "scheduler=linear",
        "callbacks.resume.every_n_train_steps=3",
    ]
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    # The uninterrupted run goes on in parallel while the other one is started and killed.
    with open(tmp_path / "straight.log", "w") as straight_log:
        straight_run = subprocess.Popen(
            train_cmd(straight, *overrides),
            env=env(),
            stdout=straight_log,
            stderr=subprocess.STDOUT,
        )
    last = crashed / "checkpoints" / "last.ckpt"
    with open(tmp_path / "crashed.log", "w") as log:
        proc = subprocess.Popen(
            train_cmd(crashed, *overrides), env=env(), stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 600
        while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert straight_run.wait(timeout=600) == 0, (tmp_path / "straight.log").read_text()[-3000:]
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "crashed.log").read_text()[-3000:]
    position = loader_state_in(torch.load(last, weights_only=True))
    assert position is not None and position["epoch"] == 0 and 0 < position["batches_done"] < 12, (
        position
    )
    assert not (crashed / "export").exists()

    resumed = subprocess.run(
        train_cmd(crashed, *overrides, "resume=true"),
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-5000:]
    assert "Restoring states from the checkpoint" in resumed.stdout + resumed.stderr
    assert "not resumable" not in resumed.stderr

    for name in ("last.ckpt", "best.ckpt"):
        assert same_tensors(
            trainable(straight / "checkpoints" / name), trainable(crashed / "checkpoints" / name)
        ), name
    prompt = load_file(str(straight / "export" / "prompt.safetensors"))["prompt"]
    assert torch.equal(prompt, load_file(str(crashed / "export" / "prompt.safetensors"))["prompt"])
    metrics = json.loads((straight / "export" / "rpt.json").read_text())["metrics"]
    assert metrics == json.loads((crashed / "export" / "rpt.json").read_text())["metrics"]
    assert {"train/loss", "val/score", "val/score_best"} <= metrics.keys()


# ---- determinism -----------------------------------------------------------------------------

SHORT = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=1",
    "prompt.net.dropout=0.1",
]


def test_same_seed_same_prompt_other_seed_other_prompt(tmp_path, data_dir):
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        train_in_process(tmp_path / name, [*SHORT, f"data.dir={data_dir}", f"seed={seed}"])
        runs[name] = (
            trainable(tmp_path / name / "checkpoints" / "last.ckpt"),
            load_file(str(tmp_path / name / "export" / "prompt.safetensors"))["prompt"],
        )
    assert same_tensors(runs["a"][0], runs["b"][0]) and torch.equal(runs["a"][1], runs["b"][1])
    assert not torch.equal(runs["a"][1], runs["c"][1])


def test_data_seed_changes_the_examples_and_nothing_else(data_dir):
    def build(seed: int, data_seed: int):
        cfg = compose_config(
            [
                *TINY,
                f"data.dir={data_dir}",
                "data.max_train_examples=16",
                f"seed={seed}",
                f"data_seed={data_seed}",
            ]
        )
        L.seed_everything(seed)  # as rpt.train does: the prompt network's weights come from it
        module = PromptTuningModule(run_config(cfg))
        picked = [ex.idx for ex in build_datamodule(module, cfg).split_examples("train")]
        return module.computed_prompt(), picked

    prompt_0, picked_0 = build(seed=1, data_seed=0)
    prompt_1, picked_1 = build(seed=1, data_seed=1)
    prompt_s, picked_s = build(seed=2, data_seed=0)
    assert (
        len(picked_0) == len(picked_1) == 16 and picked_0 != picked_1
    )  # data_seed: other examples
    assert torch.equal(prompt_0, prompt_1)  # ... the same initial prompt
    assert picked_s == picked_0 and not torch.equal(prompt_s, prompt_0)  # seed: the reverse


# ---- numerical faults ------------------------------------------------------------------------


def nan_from_call(monkeypatch, first_bad: int, last_bad: int | None = None) -> None:
    """Make the training loss NaN on calls ``first_bad..last_bad`` (1-based; all later ones if None)."""
    real = Seq2SeqBackbone.loss
    calls = {"n": 0}

    def loss(self, batch, prompt):
        calls["n"] += 1
        value = real(self, batch, prompt)
        bad = calls["n"] >= first_bad and (last_bad is None or calls["n"] <= last_bad)
        return value * float("nan") if bad else value

    monkeypatch.setattr(Seq2SeqBackbone, "loss", loss)


def test_nonfinite_loss_stops_with_a_clear_message_and_exports_the_best_so_far(
    tmp_path, data_dir, monkeypatch
):
    nan_from_call(monkeypatch, first_bad=5)  # epoch 1, its second batch
    run = tmp_path / "run"
    with pytest.raises(FloatingPointError) as info:
        train_in_process(
            run,
            [
                f"data.dir={data_dir}",
                "trainer.max_epochs=3",
                "trainer.limit_train_batches=3",
                "trainer.limit_val_batches=1",
            ],
        )
    message = str(info.value)
    assert "Non-finite training loss (nan) at epoch 1, batch 1, global step 4" in message
    assert "Lower optimizer.lr, or set train.on_nonfinite=skip" in message
    # The checkpoints on disk are the last good ones (end of epoch 0), and the export is the best.
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    module = PromptTuningModule(best["hyper_parameters"]["cfg"])
    module.load_state_dict(best["state_dict"], strict=False)
    assert torch.equal(
        load_file(str(run / "export" / "prompt.safetensors"))["prompt"], module.computed_prompt()
    )
    notes = json.loads((run / "export" / "rpt.json").read_text()).get("notes", [])
    assert any("stopped early: Non-finite training loss" in n for n in notes), notes


def test_nonfinite_loss_with_skip_policy_skips_only_that_step(
    tmp_path, data_dir, monkeypatch, capsys
):
    nan_from_call(monkeypatch, first_bad=2, last_bad=2)
    prompts = []

    class Snapshot(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            prompts.append(pl_module.reparam.prompt.detach().clone())

    build_trainer = rpt.train.build_trainer

    def with_snapshots(cfg):
        trainer = build_trainer(cfg)
        trainer.callbacks.append(Snapshot())
        return trainer

    monkeypatch.setattr(rpt.train, "build_trainer", with_snapshots)
    run = tmp_path / "run"
    train_in_process(run, [f"data.dir={data_dir}", *SHORT, "train.on_nonfinite=skip"])
    assert (
        "non-finite loss (nan) at epoch 0, batch 1, global step 1: step skipped"
        in capsys.readouterr().out
    )
    assert len(prompts) == 4
    assert torch.equal(prompts[1], prompts[0])  # the NaN batch changed nothing
    assert not torch.equal(prompts[2], prompts[1]) and not torch.equal(prompts[0], prompts[3])
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert (run / "export" / "prompt.safetensors").is_file()


# ---- bad data, untrusted checkpoints ---------------------------------------------------------


def test_broken_data_file_fails_naming_the_file_and_line(tmp_path, data_dir):
    folder = tmp_path / "data" / "CB"
    folder.mkdir(parents=True)
    good = (data_dir / "CB" / "train.jsonl").read_text().splitlines()[:20]
    (folder / "train.jsonl").write_text(
        "\n".join([*good[:6], good[6][: len(good[6]) // 2], *good[7:]]) + "\n"
    )
    (folder / "val.jsonl").write_text(
        "\n".join((data_dir / "CB" / "val.jsonl").read_text().splitlines()[:8]) + "\n"
    )
    result = subprocess.run(
        train_cmd(tmp_path / "run", *TINY, f"data.dir={tmp_path / 'data'}", "trainer.max_epochs=1"),
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    assert f"{folder / 'train.jsonl'}:7: malformed JSON" in result.stderr, result.stderr[-3000:]


class RunsCode:
    """Unpickling this object calls ``open(path, "w")``: the file appears if code ran on load."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_resuming_from_a_malicious_checkpoint_runs_no_code(tmp_path, data_dir):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "global_step": 0, "payload": RunsCode(str(marker))}, evil)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        train_in_process(tmp_path / "run", [f"data.dir={data_dir}", *SHORT, f"ckpt_path={evil}"])
    with pytest.raises(pickle.UnpicklingError):
        rpt.train.load_trainable_state(None, str(evil))  # type: ignore[arg-type]
    assert not marker.exists()
