"""Build configs and modules the way `rpt.train` does, and run rpt's commands, for tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from tests.conftest import CONF


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The composed training config, outside a Hydra run (paths.output_dir set to a dummy)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = "unused"
    return cfg


def plain_config(overrides: Sequence[str] = ()) -> dict[str, Any]:
    from rpt.config import run_config

    return run_config(compose_config(overrides))


def build_module(overrides: Sequence[str] = ()):
    from rpt.module import PromptTuningModule

    return PromptTuningModule(plain_config(overrides))


def build_datamodule(module, cfg: DictConfig):
    from rpt.train import make_datamodule

    return make_datamodule(module, cfg, module.task)


def make_batch(module, examples):
    """Featurise and collate exactly as the DataModule does (right-padded)."""
    from rpt.data.collate import Collator

    n = module.reparam.length
    features = [
        {
            **module.backbone.featurize(ex.source, ex.choices, ex.target, n),
            "example": ex,
            "index": i,
        }
        for i, ex in enumerate(examples)
    ]
    return Collator(module.backbone.pad_id)(features)


def run_module(
    module: str,
    *args: str,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: int = 600,
) -> subprocess.CompletedProcess:
    """``python -m module args`` in a process of its own, offline; asserts it succeeded.

    ``env`` adds to (and overrides) this process's environment. On failure the message holds
    the command and the tails of its output.
    """
    cmd = [sys.executable, "-m", module, *args]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    result = subprocess.run(
        cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{' '.join(cmd)}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-5000:]}"
    )
    return result
