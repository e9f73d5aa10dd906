"""Bad configurations stop before any model is loaded, with a sentence that says what to change.

Each case runs the real ``rpt.train.train`` on a composed config, with model loading replaced by
a function that fails the test if it is ever called.
"""

from __future__ import annotations

import pytest
from hydra.errors import MissingConfigException
from omegaconf import open_dict

import rpt.backbones
import rpt.module
import rpt.train
from rpt.config import ConfigError
from tests.helpers import compose_config

TINY = ["model=tiny_t5", "task=cb", "prompt=residual_mlp2", "trainer=cpu", "logger=none"]


@pytest.fixture
def no_model_loading(monkeypatch):
    """Any attempt to load a model fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded although the config is invalid")

    monkeypatch.setattr(rpt.backbones, "build_backbone", refuse)
    monkeypatch.setattr(rpt.module, "build_backbone", refuse)


def train_with(overrides, tmp_path):
    cfg = compose_config([*TINY, *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    return rpt.train.train(cfg)


CASES = [
    # (overrides, error type, phrases the message must contain)
    (
        ["prompt.length=300"],
        ConfigError,
        ["prompt.length=300 does not fit model.max_length=128", "prompt.length<=126"],
    ),
    (["prompt.net.bottleneck=0"], ConfigError, ["bottleneck", "0"]),
    (["prompt.net.bottleneck=-5"], ConfigError, ["bottleneck", "-5"]),
    (["optimizer.lr=[]"], ConfigError, ["optimizer.lr is an empty list", "optimizer.lr=0.3"]),
    (
        ["optimizer.lr=[0.3,0.03]"],
        ConfigError,
        ["a run takes one learning rate", "-m optimizer.lr=0.3,0.03"],
    ),
    (["optimizer.lr=0"], ConfigError, ["optimizer.lr must be > 0"]),
    (["eval.mode=beam"], ConfigError, ["eval.mode must be one of rank, generate", "'beam'"]),
    (["train.on_nonfinite=ignore"], ConfigError, ["train.on_nonfinite must be one of stop, skip"]),
    (["data.k_per_class=0"], ConfigError, ["data.k_per_class must be a whole number >= 1"]),
    (["data.batch_size=0"], ConfigError, ["data.batch_size must be a whole number >= 1"]),
    (["data.source=ftp"], ConfigError, ["data.source must be one of auto, local, hub"]),
    (["seed=-1"], ConfigError, ["seed must be a whole number >= 0"]),
    (
        ["resume=true"],
        ConfigError,
        ["resume=true but", "last.ckpt does not exist", "hydra.run.dir"],
    ),
    (
        ["ckpt_path=/nowhere/x.ckpt"],
        ConfigError,
        ["ckpt_path=/nowhere/x.ckpt does not exist"],
    ),
]


@pytest.mark.parametrize(
    ("overrides", "error", "phrases"), CASES, ids=[" ".join(c[0]) for c in CASES]
)
def test_bad_setting_stops_before_the_model_loads(
    overrides, error, phrases, tmp_path, no_model_loading
):
    with pytest.raises(error) as info:
        train_with(overrides, tmp_path)
    for phrase in phrases:
        assert phrase in str(info.value), str(info.value)


def test_weights_only_checkpoint_is_refused_as_ckpt_path(tmp_path, no_model_loading):
    # best.ckpt is saved weights-only; continuing training from it needs the optimizer state.
    import torch

    folder = tmp_path / "old" / "checkpoints"
    folder.mkdir(parents=True)
    best, last = folder / "best.ckpt", folder / "last.ckpt"
    torch.save({"state_dict": {}, "epoch": 0, "global_step": 3}, best)
    torch.save({"state_dict": {}, "epoch": 0, "global_step": 3, "optimizer_states": []}, last)
    with pytest.raises(ConfigError) as info:
        train_with([f"ckpt_path={best}"], tmp_path)
    message = str(info.value)
    assert f"ckpt_path: {best} holds weights only, no optimizer state" in message
    assert f"continue from {last}" in message and "python -m rpt.export" in message
    # A checkpoint with optimizer state passes this check (and goes on to load the model).
    with pytest.raises(AssertionError, match="a model was loaded"):
        train_with([f"ckpt_path={last}"], tmp_path)


def test_data_dir_without_the_task_folder_names_what_it_found(tmp_path, no_model_loading):
    (tmp_path / "data" / "RTE").mkdir(parents=True)
    with pytest.raises(ConfigError) as info:
        train_with([f"data.dir={tmp_path / 'data'}"], tmp_path)
    message = str(info.value)
    assert "has no CB/ folder for task 'cb'" in message and "found: RTE" in message
    assert "<Task>/{train,val,test}.jsonl" in message


def test_missing_data_dir(tmp_path, no_model_loading):
    with pytest.raises(ConfigError, match="does not exist. Point data.dir"):
        train_with([f"data.dir={tmp_path / 'nope'}"], tmp_path)


@pytest.mark.parametrize(
    ("group", "known"), [("task", "cb"), ("prompt", "residual_mlp2"), ("model", "tiny_t5")]
)
def test_unknown_group_choice_lists_the_valid_ones(group, known):
    with pytest.raises(MissingConfigException) as info:
        compose_config([f"{group}=nope"])
    message = str(info.value)
    assert f"Could not find '{group}/nope'" in message
    assert f"Available options in '{group}'" in message and f"\t{known}\n" in message


def test_trust_remote_code_is_off_in_every_model_config():
    from tests.conftest import CONF

    for path in sorted((CONF / "model").glob("*.yaml")):
        assert compose_config([f"model={path.stem}"]).model.trust_remote_code is False, path.name
