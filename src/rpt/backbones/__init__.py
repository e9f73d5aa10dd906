"""Backbones: a frozen Hugging Face model per family behind one interface."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Mapping
from typing import Any

from torch import nn

from rpt.backbones.base import Backbone
from rpt.backbones.causal import CausalBackbone
from rpt.backbones.encoder import EncoderBackbone
from rpt.backbones.loading import FAMILIES, ModelLoadError, family_of, load_model, load_tokenizer
from rpt.backbones.seq2seq import Seq2SeqBackbone
from rpt.config import ConfigError

__all__ = [
    "FAMILIES",
    "Backbone",
    "CausalBackbone",
    "EncoderBackbone",
    "ModelLoadError",
    "Seq2SeqBackbone",
    "build_backbone",
    "checkpointed_modules",
    "enable_gradient_checkpointing",
    "family_of",
    "train_checkpointed_modules",
]


def build_backbone(model_cfg: Mapping[str, Any], num_classes: int | None = None) -> Backbone:
    """Load the model named by ``model_cfg`` and wrap it in its family's backbone, frozen.

    ``num_classes`` is the task's fixed label count (``None`` when candidates vary per example);
    only the encoder family uses it, for the size of its classification head.
    """
    tokenizer = load_tokenizer(model_cfg)
    model, family = load_model(model_cfg, tokenizer)
    if model_cfg.get("gradient_checkpointing"):
        enable_gradient_checkpointing(model)
    max_length = int(model_cfg.get("max_length", 512))
    if family == "encoder":
        return EncoderBackbone(
            model,
            tokenizer,
            max_length,
            num_classes=num_classes,
            prompt_position=model_cfg.get("prompt_position", "after_cls"),
            pooling=model_cfg.get("pooling", "cls"),
        )
    cls = {"seq2seq": Seq2SeqBackbone, "causal": CausalBackbone}[family]
    return cls(model, tokenizer, max_length)


def enable_gradient_checkpointing(model: Any) -> None:
    """Recompute each layer's activations during the backward pass instead of storing them.

    Activation memory drops from one set per layer to about one layer's worth, for roughly one
    more forward pass of compute (docs/performance.md). Non-reentrant checkpointing lets the
    gradient reach ``inputs_embeds`` (the prompt) although every weight is frozen. Hugging Face
    applies it only while the layers are in train mode; with the frozen model in eval mode (no
    dropout, rpt's default) :func:`train_checkpointed_modules` puts just them there.
    """
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ConfigError(
            f"model.gradient_checkpointing=true: {type(model).__name__} does not support it"
        )
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


# Hugging Face's own switch, ``if self.gradient_checkpointing and self.training``: reading the
# train mode there turns checkpointing (and, in the stacks, the decoder's cache) on or off only.
_CHECKPOINT_SWITCH = re.compile(r"self\.gradient_checkpointing\s+and\s+self\.training")


@functools.cache
def _train_mode_only_checkpoints(cls: type) -> bool:
    """Whether ``cls.forward`` reads ``self.training`` in Hugging Face's checkpoint switch only.

    Read from the source of ``forward`` itself (helpers it calls are not read); no source
    counts as no.
    """
    try:
        source = inspect.getsource(inspect.unwrap(cls.forward))
    except (OSError, TypeError):
        return False
    return "self.training" not in _CHECKPOINT_SWITCH.sub("", source)


def _is_layer_block(module: nn.Module) -> bool:
    """A per-layer block that decides whether it is checkpointed (transformers >= 4.52)."""
    try:
        from transformers.modeling_layers import GradientCheckpointingLayer
    except ImportError:
        # Older versions decide in the stacks; an unsafe stack is left out, not refused.
        return False
    return isinstance(module, GradientCheckpointingLayer)


def checkpointed_modules(model: nn.Module) -> list[nn.Module]:
    """The modules whose own train mode turns Hugging Face's activation checkpointing on.

    ``enable_gradient_checkpointing`` sets ``gradient_checkpointing=True`` on the per-layer
    blocks (``GradientCheckpointingLayer``: T5Block, BertLayer, GPT2Block), which checkpoint only
    when ``self.training`` too, on the stacks (T5Stack, BertModel, GPT2Model), which read the
    same pair to drop the decoder's cache, and on T5Attention. Returned are the flagged modules
    whose ``forward`` reads ``self.training`` for nothing else, so that train mode on them
    changes what is checkpointed and nothing more. T5Attention is left out: its train mode would
    switch attention dropout on, and its flag only serves reentrant checkpointing (rpt's is not).

    Raises:
        ConfigError: a flagged per-layer block also reads its train mode for something else
            (BART's layers apply dropout that way): it cannot checkpoint without dropout.
    """
    flagged = [m for m in model.modules() if getattr(m, "gradient_checkpointing", False) is True]
    unsafe = sorted(
        {
            type(m).__name__
            for m in flagged
            if _is_layer_block(m) and not _train_mode_only_checkpoints(type(m))
        }
    )
    if unsafe:
        raise ConfigError(
            f"model.gradient_checkpointing=true needs {', '.join(unsafe)} in train mode, where "
            "they also apply dropout: with train.backbone_dropout=false this model cannot "
            "checkpoint. Set train.backbone_dropout=true, or model.gradient_checkpointing=false."
        )
    return [m for m in flagged if _train_mode_only_checkpoints(type(m))]


def train_checkpointed_modules(model: nn.Module) -> int:
    """Put the checkpointed layers (not their submodules) of an eval-mode model in train mode.

    Hugging Face checkpoints a layer only while ``layer.training`` is true, and rpt keeps the
    frozen model in eval mode (``train.backbone_dropout=false``) so that no dropout applies:
    without this, ``model.gradient_checkpointing=true`` did nothing. ``.training`` is set on the
    modules of :func:`checkpointed_modules` alone, not recursively (``.train()``), so dropout
    and attention submodules stay in eval mode. Lightning's validation restores every module's
    mode afterwards (``_ModuleMode``), so these flags survive a mid-epoch validation.

    Returns the number of modules set.
    """
    modules = checkpointed_modules(model)
    for module in modules:
        module.training = True
    return len(modules)
