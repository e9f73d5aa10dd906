"""The module trains only the prompt side, on every family and every prompt config."""

from __future__ import annotations

import pytest
import torch

from rpt.data.example import Example
from tests.conftest import CONF
from tests.helpers import build_module, make_batch

FAMILIES = ["tiny_t5", "tiny_bert", "tiny_gpt2"]
PROMPTS = sorted(p.stem for p in (CONF / "prompt").rglob("*.yaml"))
LABELS = ("entailment", "contradiction", "neutral")


def cb_examples() -> list[Example]:
    """Four CB-like examples written for this test (not from the real files)."""
    texts = [
        ("The cat slept all day on the warm mat.", "the cat was awake", 1),
        ("She bought bread, milk and two apples.", "she bought apples", 0),
        ("He may come to the party, or he may not.", "he will come", 2),
        ("The river flooded the old town twice last year.", "the town flooded", 0),
    ]
    return [
        Example(
            idx=i,
            source=f"premise: {p} hypothesis: {h}",
            choices=LABELS,
            label=y,
            target=LABELS[y],
        )
        for i, (p, h, y) in enumerate(texts)
    ]


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("model", FAMILIES)
def test_steps_change_only_prompt_side_and_lower_the_loss(model: str, prompt: str) -> None:
    torch.manual_seed(0)
    overrides = [f"model={model}", "task=cb", f"prompt={prompt}", "optimizer.lr=0.01"]
    if prompt == "head_only" and model != "tiny_bert":
        with pytest.raises(ValueError, match="Nothing to train"):
            build_module(overrides)
        return
    module = build_module(overrides)
    trains_prompt = module.reparam.length > 0
    frozen_before = {k: v.clone() for k, v in module.backbone.model.state_dict().items()}
    trainable_before = {k: p.detach().clone() for k, p in module.trainable_named_parameters()}
    optimizer = module.configure_optimizers()
    batch = make_batch(module, cb_examples())

    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = module.backbone.loss(batch, module.prompt())
        loss.backward()
        for name, param in module.named_parameters():
            if name.startswith("backbone.model."):
                assert not param.requires_grad and param.grad is None, name
        if trains_prompt:
            assert module.reparam.prompt.grad.abs().sum() > 0
        optimizer.step()
        losses.append(loss.item())

    for key, value in module.backbone.model.state_dict().items():
        assert torch.equal(value, frozen_before[key]), f"frozen tensor {key} changed"
    changed = [
        k for k, p in module.trainable_named_parameters() if not torch.equal(p, trainable_before[k])
    ]
    assert ("reparam.prompt" in changed) == trains_prompt
    if not trains_prompt:  # head_only: only the encoder's head learns
        assert changed and all(k.startswith("backbone.head.") for k in changed)
    assert all(not k.startswith("backbone.model.") for k in changed)
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("model", FAMILIES)
def test_rank_and_generate_give_one_answer_per_example(model: str) -> None:
    module = build_module([f"model={model}", "task=cb", "prompt=residual_mlp1"]).eval()
    examples = cb_examples()
    batch = make_batch(module, examples)
    with torch.no_grad():
        scores = module.backbone.choice_scores(batch, module.prompt())
        ranked = module.predict_texts(batch, mode="rank")
        generated = module.predict_texts(batch, mode="generate")
    assert scores.shape == (len(examples), len(LABELS))
    assert torch.isfinite(scores).all()
    assert all(t in LABELS for t in ranked)
    assert len(generated) == len(examples) and all(isinstance(t, str) for t in generated)


def test_checkpoint_holds_trainable_parameters_only() -> None:
    module = build_module(["model=tiny_t5", "task=cb", "prompt=residual_mlp2"])
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    kept = set(checkpoint["state_dict"])
    assert kept == {k for k, _ in module.trainable_named_parameters()}
    assert not any(k.startswith("backbone.model.") for k in kept)


def test_encoder_keeps_cls_first() -> None:
    module = build_module(["model=tiny_bert", "task=cb", "prompt=none"])
    batch = make_batch(module, cb_examples()[:1])
    prompt = module.prompt()
    embeds, mask = module.backbone.embed_with_prompt(
        batch["source_ids"], batch["source_mask"], prompt
    )
    cls = module.backbone.model.get_input_embeddings()(batch["source_ids"][:, :1])
    assert torch.equal(embeds[:, :1], cls)
    assert torch.equal(embeds[0, 1 : 1 + prompt.shape[0]], prompt)
    assert mask.shape[1] == batch["source_ids"].shape[1] + prompt.shape[0]


@pytest.mark.parametrize("flag", [False, True])
def test_backbone_dropout_follows_the_config(flag: bool) -> None:
    module = build_module(
        ["model=tiny_t5", "task=cb", "prompt=none", f"train.backbone_dropout={str(flag).lower()}"]
    )
    module.backbone.model.train(not flag)
    module.on_train_epoch_start()
    assert module.backbone.model.training is flag
    assert all(m.training is flag for m in module.backbone.model.modules())
