"""model.gradient_checkpointing=true with the frozen model in eval mode (rpt's default, no dropout).

Hugging Face checkpoints a layer only while the layer is in train mode; rpt puts exactly the
checkpointed layers there (``rpt.backbones.train_checkpointed_modules``). The tiny models get
dropout 0.5 here, so that any dropout the change let through would move the loss.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from rpt.backbones import checkpointed_modules
from tests.helpers import build_datamodule, build_module, compose_config, make_batch
from tests.unit.test_module import cb_examples

# Every dropout of each tiny model set to 0.5 (the configs have 0.0).
DROPOUT = {
    "tiny_t5": ["model.random_init.dropout_rate=0.5"],
    "tiny_bert": [
        "model.random_init.hidden_dropout_prob=0.5",
        "model.random_init.attention_probs_dropout_prob=0.5",
    ],
    "tiny_gpt2": [
        "model.random_init.resid_pdrop=0.5",
        "model.random_init.embd_pdrop=0.5",
        "model.random_init.attn_pdrop=0.5",
    ],
}


def overrides(model: str, checkpointing: bool) -> list[str]:
    return [
        f"model={model}",
        "task=cb",
        "prompt=residual_mlp1",
        "train.backbone_dropout=false",
        f"model.gradient_checkpointing={str(checkpointing).lower()}",
        *DROPOUT[model],
    ]


def first_layer_linear(model: nn.Module) -> nn.Module:
    """The first projection (``nn.Linear``; GPT-2: ``Conv1D``) of the first per-layer block.

    It runs inside the checkpoint. A hook on the block itself would not see the recomputation:
    Hugging Face checkpoints the block's ``forward``, inside its hooks.
    """
    from transformers.modeling_layers import GradientCheckpointingLayer
    from transformers.pytorch_utils import Conv1D

    block = next(m for m in model.modules() if isinstance(m, GradientCheckpointingLayer))
    return next(m for m in block.modules() if isinstance(m, (nn.Linear, Conv1D)))


def training_step(module, batch) -> dict:
    """One step as Lightning runs it: epoch start, loss, backward. What happened, recorded."""
    module.on_train_epoch_start()
    model = module.backbone.model
    calls = []
    dropout_training = []
    hooks = [first_layer_linear(model).register_forward_hook(lambda *_: calls.append(1))]
    hooks += [
        m.register_forward_pre_hook(lambda m, _: dropout_training.append(m.training))
        for m in model.modules()
        if isinstance(m, nn.Dropout)
    ]
    try:
        loss = module.backbone.loss(batch, module.prompt())
        loss.backward()
    finally:
        for hook in hooks:
            hook.remove()
    return {
        "calls": len(calls),
        "loss": loss.detach(),
        "grad": module.reparam.prompt.grad.detach().clone(),
        "dropout_training": dropout_training,
        "train_mode": {name for name, m in model.named_modules() if m.training},
    }


@pytest.mark.parametrize("model", ["tiny_t5", "tiny_bert", "tiny_gpt2"])
def test_checkpointing_recomputes_in_eval_mode_with_the_same_loss_and_gradient(model: str) -> None:
    plain = build_module(overrides(model, False))
    ckpt = build_module(overrides(model, True))
    ckpt.load_state_dict(plain.state_dict())  # the same weights and prompt, to the bit
    batch = make_batch(plain, cb_examples())

    without = training_step(plain, batch)
    with_ckpt = training_step(ckpt, batch)

    # (a) the checkpointed layer runs again in the backward pass; without checkpointing once
    assert without["calls"] == 1
    assert with_ckpt["calls"] == 2
    # (b) the same loss and prompt gradient: recomputation, no dropout
    torch.testing.assert_close(with_ckpt["loss"], without["loss"], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(with_ckpt["grad"], without["grad"], rtol=1e-5, atol=1e-7)
    assert with_ckpt["grad"].abs().sum() > 0
    # (c) no dropout module ran in train mode; only the checkpointed modules are in train mode
    assert with_ckpt["dropout_training"] and not any(with_ckpt["dropout_training"])
    assert without["train_mode"] == set()
    flagged = {id(m) for m in checkpointed_modules(ckpt.backbone.model)}
    named = dict(ckpt.backbone.model.named_modules())
    assert with_ckpt["train_mode"] and all(id(named[n]) in flagged for n in with_ckpt["train_mode"])
    assert not any(isinstance(named[n], nn.Dropout) for n in with_ckpt["train_mode"])


def test_t5_attention_stays_in_eval_mode() -> None:
    # T5Attention carries the checkpointing flag too, but its train mode is attention dropout.
    module = build_module(overrides("tiny_t5", True))
    module.on_train_epoch_start()
    kinds = {type(m).__name__ for m in module.backbone.model.modules() if m.training}
    assert kinds == {"T5Stack", "T5Block"}


def test_backbone_dropout_true_keeps_the_whole_model_in_train_mode() -> None:
    module = build_module([*overrides("tiny_t5", True), "train.backbone_dropout=true"])
    module.on_train_epoch_start()
    assert all(m.training for m in module.backbone.model.modules())


def test_a_layer_that_applies_its_own_dropout_is_refused_with_a_config_error() -> None:
    # BART's layers call F.dropout(training=self.training): train mode would bring dropout.
    # A ConfigError is what rpt.train prints as one line, without a traceback.
    from rpt.config import ConfigError

    with pytest.raises(ConfigError, match="BartDecoderLayer, BartEncoderLayer.*dropout=true"):
        build_module(["model=tiny_bart", "task=cb", "model.gradient_checkpointing=true"])


class RecordSteps(Callback):
    """Per training batch: calls of one checkpointed Linear; per validation batch: modes."""

    def __init__(self, linear: nn.Module):
        self.calls = 0
        self.per_step: list[int] = []
        self.val_train_mode: list[bool] = []
        linear.register_forward_hook(self._count)

    def _count(self, *_) -> None:
        self.calls += 1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.calls = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.per_step.append(self.calls)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, *_) -> None:
        self.val_train_mode.append(any(m.training for m in pl_module.backbone.model.modules()))


def test_checkpointing_survives_mid_epoch_validation(fixture_data_dir: Path, tmp_path) -> None:
    # 3 training examples, batch 1, validation after every step: the steps after a validation
    # (which puts the model in eval mode, then restores each module's mode) still recompute.
    args = [*overrides("tiny_t5", True), f"data.dir={fixture_data_dir}", "data.batch_size=1"]
    cfg = compose_config(args)
    module = build_module(args)
    datamodule = build_datamodule(module, cfg)
    recorder = RecordSteps(first_layer_linear(module.backbone.model))
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        val_check_interval=1,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        callbacks=[recorder],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=datamodule)
    assert recorder.per_step == [2, 2, 2]
    assert len(recorder.val_train_mode) >= 2 and not any(recorder.val_train_mode)
