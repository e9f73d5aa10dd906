"""Checkpoint files survive kills, carry RNG states, never run code; models run no shipped code.

No SuperGLUE data and no training: these run in seconds.
"""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rpt.callbacks import AtomicCheckpointIO, rng_state, set_rng_state
from rpt.data.samplers import EpochSeededSampler, LengthGroupedSampler
from rpt.resume import ResumableDataLoader, ResumeError

# ---- atomic checkpoint writes ------------------------------------------------------------------


def test_failed_write_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    target = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, target)
    before = target.read_bytes()

    real_save = torch.save

    def dies_half_way(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)  # half a file on disk, then the "crash"
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"step": torch.tensor(2), "big": torch.zeros(10_000)}, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


WRITER = textwrap.dedent(
    """
    import sys, time, torch
    from rpt.callbacks import AtomicCheckpointIO
    io, target = AtomicCheckpointIO(), sys.argv[1]
    io.save_checkpoint({"step": 1, "w": torch.ones(1_000_000)}, target)
    real_save = torch.save

    def half_then_hang(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)
        f.flush()
        print("half written", flush=True)
        time.sleep(600)  # the SIGKILL arrives here, in the middle of the write

    torch.save = half_then_hang
    io.save_checkpoint({"step": 2, "w": torch.zeros(1_000_000)}, target)
    """
)


def test_sigkill_in_the_middle_of_a_write_keeps_the_previous_checkpoint(tmp_path):
    target = tmp_path / "last.ckpt"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "half written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    checkpoint = torch.load(target, weights_only=True)  # a truncated file would raise here
    assert checkpoint["step"] == 1 and torch.equal(checkpoint["w"], torch.ones(1_000_000))
    # The half-written file is a hidden temporary next to it (ResumeState removes such leftovers).
    assert [p.name for p in tmp_path.glob(".last.ckpt.tmp-*")] == [f".last.ckpt.tmp-{proc.pid}"]


def test_checkpoint_io_loads_with_weights_only_by_default(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": RunsCode(str(marker))}, evil)
    with pytest.raises(pickle.UnpicklingError):
        AtomicCheckpointIO().load_checkpoint(evil)
    assert not marker.exists()


class RunsCode:
    """Unpickling this object calls ``open(path, "w")``: the file appears if code ran on load."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


# ---- RNG states ----------------------------------------------------------------------------


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    AtomicCheckpointIO().save_checkpoint({"rng": rng_state()}, tmp_path / "r.ckpt")
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(AtomicCheckpointIO().load_checkpoint(tmp_path / "r.ckpt")["rng"])
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


# ---- the resumable training loader ---------------------------------------------------------


def loader(
    size: int = 20, batch_size: int = 3, seed: int = 5, grouped: bool = False
) -> ResumableDataLoader:
    if grouped:  # data.group_by_length=true
        sampler = LengthGroupedSampler([i % 7 for i in range(size)], batch_size, seed, window=2)
    else:
        sampler = EpochSeededSampler(size, seed)
    return ResumableDataLoader(list(range(size)), batch_size=batch_size, sampler=sampler)


def batches(dl: DataLoader) -> list[list[int]]:
    return [b.tolist() for b in dl]


@pytest.mark.parametrize("grouped", [False, True], ids=["epoch_seeded", "length_grouped"])
def test_loader_resumes_at_the_saved_batch_of_the_saved_epoch(grouped):
    full = loader(grouped=grouped)
    full.sampler.set_epoch(2)
    expected = batches(full)
    assert expected != batches(
        loader(grouped=grouped)
    )  # epochs differ, so the epoch must be restored
    resumed = loader(grouped=grouped)  # a fresh process: its sampler is at epoch 0
    resumed.load_state_dict({"epoch": 2, "batches_done": 4, "num_examples": 20, "num_batches": 7})
    assert batches(resumed) == expected[4:]
    assert batches(resumed) == expected  # only the first iterator skips


def test_loader_state_at_the_end_of_an_epoch_leaves_nothing_of_it():
    resumed = loader()
    resumed.load_state_dict({"epoch": 0, "batches_done": 7, "num_examples": 20, "num_batches": 7})
    assert batches(resumed) == []


def test_loader_refuses_a_checkpoint_from_other_data():
    resumed = loader(size=21)
    resumed.load_state_dict({"epoch": 0, "batches_done": 2, "num_examples": 20, "num_batches": 7})
    with pytest.raises(
        ResumeError, match="training on 20 examples, but this run's training set has 21"
    ):
        iter(resumed)


# ---- models: no code from the model folder ---------------------------------------------------


def test_model_folder_with_custom_code_is_refused_without_running_it(tmp_path):
    from rpt.backbones.loading import ModelLoadError, load_model

    marker = tmp_path / "code-ran"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(
        '{"model_type": "evil", "architectures": ["EvilModel"],'
        ' "auto_map": {"AutoConfig": "configuration_evil.EvilConfig"}}'
    )
    (folder / "configuration_evil.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from transformers import PretrainedConfig\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n"
    )
    with pytest.raises(ModelLoadError, match="its own Python code.*model.trust_remote_code=true"):
        load_model({"name_or_path": str(folder), "trust_remote_code": False}, tokenizer=None)
    assert not marker.exists()
    with pytest.raises(ValueError, match="model.trust_remote_code must be true or false"):
        load_model({"name_or_path": str(folder), "trust_remote_code": "yes"}, tokenizer=None)
    assert not marker.exists()


def test_hf_loaders_receive_trust_remote_code_false(monkeypatch):
    from rpt.backbones import loading

    seen = []

    def record(loader, path, what, **kwargs):
        seen.append((what, kwargs.get("trust_remote_code")))
        raise loading.ModelLoadError("stop here")

    monkeypatch.setattr(loading, "_from_source", record)
    cfg = {"name_or_path": "some/model", "trust_remote_code": False}
    for call in (lambda: loading.load_tokenizer(cfg), lambda: loading.load_model(cfg, None)):
        with pytest.raises(loading.ModelLoadError):
            call()
    assert seen == [("tokenizer", False), ("model config", False)]


def test_environment_is_offline():
    # The evil-folder test must not reach the hub (conftest sets this for every test).
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert Path(sys.executable).exists()
