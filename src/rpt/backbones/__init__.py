"""Backbones: a frozen Hugging Face model per family behind one interface."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rpt.backbones.base import Backbone
from rpt.backbones.causal import CausalBackbone
from rpt.backbones.encoder import EncoderBackbone
from rpt.backbones.loading import FAMILIES, ModelLoadError, family_of, load_model, load_tokenizer
from rpt.backbones.seq2seq import Seq2SeqBackbone

__all__ = [
    "FAMILIES",
    "Backbone",
    "CausalBackbone",
    "EncoderBackbone",
    "ModelLoadError",
    "Seq2SeqBackbone",
    "build_backbone",
    "enable_gradient_checkpointing",
    "family_of",
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
    applies it only while the model is in train mode.
    """
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ValueError(
            f"model.gradient_checkpointing=true: {type(model).__name__} does not support it"
        )
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
