"""Build configs and modules the way `rpt.train` does, for tests."""

from __future__ import annotations

from collections.abc import Sequence
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
