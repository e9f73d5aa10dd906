"""Initial values of the raw prompt P, `(length, d)` float32.

Strategies (config key `prompt.init.strategy`):

- "vocab" (the paper's default): the embeddings of `length` token ids drawn uniformly, with
  replacement, from the first `vocab_sample_size` ids. The original code draws each id with
  `np.random.randint(V)` over the whole embedding matrix (with replacement, unseeded);
  `vocab_sample_size=None` reproduces that. The default 5000 follows Lester et al. (2021), who
  sample from the 5000 most common tokens: SentencePiece vocabularies (T5) are ordered roughly
  by frequency, and the whole T5 matrix also has ~28 padding rows that were never trained.
- "uniform": U(-range_, range_), the original code's `random_prompt_init` (range 0.5).
- "text": the embeddings of the tokenised `text` (no special tokens), repeated or truncated
  to `length` (Lester et al.'s and PEFT's text initialisation).
- "label_words": one vector per label word, the mean of its sub-token embeddings (Lester et
  al.'s class-label initialisation), truncated to `length` or filled up with "vocab" samples.
- "file": the tensor under key `prompt` of a safetensors file (e.g. an exported P').

Everything random comes from `generator`, so a seeded generator gives the same prompt.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from rpt.prompts.base import check_int

__all__ = ["STRATEGIES", "initial_prompt"]


def initial_prompt(
    strategy: str,
    length: int,
    embeddings: Tensor,
    *,
    tokenizer: Any = None,
    text: str | None = None,
    label_words: Sequence[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    range_: float = 0.5,
    vocab_sample_size: int | None = 5000,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Return an initial prompt `(length, d)` float32 on the CPU (a new tensor).

    Args:
        strategy: one of `STRATEGIES` (see the module docstring).
        length: number of prompt tokens n.
        embeddings: the frozen model's input embedding matrix `(V, d)`; it is only read.
        tokenizer: a Hugging Face tokenizer; needed by "text" and "label_words".
        text: the text for "text".
        label_words: the verbalizer words for "label_words".
        path: the safetensors file for "file".
        range_: half-width of the "uniform" interval.
        vocab_sample_size: "vocab" draws from ids [0, vocab_sample_size); None = all V ids.
        generator: source of randomness ("vocab", "uniform", the fill of "label_words").
    """
    if strategy not in STRATEGIES:
        raise ValueError(
            f"prompt.init.strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}"
        )
    check_int("prompt.length", length, 1)
    if embeddings.dim() != 2:
        raise ValueError(
            f"embeddings must be the (V, d) input embedding matrix, got shape "
            f"{tuple(embeddings.shape)}"
        )
    args = {
        "tokenizer": tokenizer,
        "text": text,
        "label_words": label_words,
        "path": path,
        "range_": range_,
        "vocab_sample_size": vocab_sample_size,
        "generator": generator,
    }
    with torch.no_grad():
        prompt = STRATEGIES[strategy](length, embeddings, **args)  # (n, d)
    # A fresh float32 CPU tensor: never a view of the frozen embeddings, whatever their dtype.
    return prompt.detach().to(device="cpu", dtype=torch.float32).clone()


# 1. The strategies. Each takes (length, embeddings, **args) and returns (length, d).


def _vocab(
    length: int, embeddings: Tensor, *, vocab_sample_size: int | None, generator, **_: Any
) -> Tensor:
    vocab_size = embeddings.shape[0]
    if vocab_sample_size is None:
        high = vocab_size
    else:
        high = min(check_int("prompt.init.vocab_sample_size", vocab_sample_size, 1), vocab_size)
    ids = _randint(high, length, generator)  # (n,)
    return embeddings[ids.to(embeddings.device)]  # (n, d)


def _uniform(length: int, embeddings: Tensor, *, range_: float, generator, **_: Any) -> Tensor:
    if isinstance(range_, bool) or not isinstance(range_, int | float) or not range_ > 0:
        raise ValueError(f"prompt.init.range must be a number > 0, got {range_!r}")
    device = generator.device if generator is not None else "cpu"
    u = torch.rand(length, embeddings.shape[1], generator=generator, device=device)  # (n, d)
    return (2 * u - 1) * range_  # U(-range_, range_)


def _text(length: int, embeddings: Tensor, *, tokenizer, text: str | None, **_: Any) -> Tensor:
    if tokenizer is None:
        raise ValueError("prompt.init.strategy=text needs a tokenizer")
    if not text:
        raise ValueError("prompt.init.strategy=text needs a non-empty prompt.init.text")
    ids = _token_ids(tokenizer, text)
    if not ids:
        raise ValueError(f"prompt.init.text {text!r} tokenises to no tokens")
    ids = (ids * math.ceil(length / len(ids)))[:length]  # repeat, then truncate to n
    return embeddings[torch.tensor(ids, device=embeddings.device)]  # (n, d)


def _label_words(
    length: int,
    embeddings: Tensor,
    *,
    tokenizer,
    label_words: Sequence[str] | None,
    **args: Any,
) -> Tensor:
    if tokenizer is None:
        raise ValueError("prompt.init.strategy=label_words needs a tokenizer")
    if not label_words or isinstance(label_words, str):
        raise ValueError(
            f"prompt.init.strategy=label_words needs a non-empty list of label words, "
            f"got {label_words!r}"
        )
    vectors = []
    for word in label_words[:length]:
        ids = _token_ids(tokenizer, word)
        if not ids:
            raise ValueError(f"label word {word!r} tokenises to no tokens")
        # A multi-token word becomes the mean of its pieces, one prompt vector per class.
        vectors.append(embeddings[torch.tensor(ids, device=embeddings.device)].mean(dim=0))
    words = torch.stack(vectors)  # (min(n, num_labels), d)
    fill = length - words.shape[0]
    if fill == 0:
        return words
    return torch.cat([words, _vocab(fill, embeddings, **args)])  # (n, d)


def _file(length: int, embeddings: Tensor, *, path, **_: Any) -> Tensor:
    from safetensors.torch import load_file

    if path is None:
        raise ValueError("prompt.init.strategy=file needs prompt.init.path")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"prompt.init.path {os.fspath(path)!r} does not exist")
    tensors = load_file(os.fspath(path))
    if "prompt" not in tensors:
        raise ValueError(
            f"{os.fspath(path)} has no tensor named 'prompt' (found: {', '.join(tensors)})"
        )
    prompt = tensors["prompt"]
    expected = (length, embeddings.shape[1])
    if tuple(prompt.shape) != expected:
        raise ValueError(
            f"{os.fspath(path)} holds a prompt of shape {tuple(prompt.shape)}, but "
            f"(prompt.length, d) = {expected}"
        )
    return prompt


STRATEGIES: dict[str, Callable[..., Tensor]] = {
    "vocab": _vocab,
    "uniform": _uniform,
    "text": _text,
    "label_words": _label_words,
    "file": _file,
}


# 2. Helpers.


def _randint(high: int, size: int, generator: torch.Generator | None) -> Tensor:
    """`size` ids uniform in [0, high), on the CPU; drawn on the generator's device if any."""
    device = generator.device if generator is not None else "cpu"
    return torch.randint(high, (size,), generator=generator, device=device).cpu()


def _token_ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
