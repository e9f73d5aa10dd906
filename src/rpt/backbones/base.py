"""The backbone interface shared by the three model families.

A backbone wraps a frozen Hugging Face model and its tokenizer. It knows how to

* turn an example's texts into token ids (``featurize``), leaving room for the prompt;
* compute the training loss for a batch given the prompt ``P'`` of shape ``(n, d)``;
* score every candidate answer (``choice_scores``, rank evaluation);
* generate an answer (``generate``, greedy, paper-comparable evaluation).

The training loop in :mod:`rpt.module` is the same for every family; only these methods differ.

A batch (see :mod:`rpt.data.collate`) holds:

* ``source_ids`` ``(B, S)`` long, right-padded, and ``source_mask`` ``(B, S)``;
* ``target_ids`` ``(B, L)`` long, the gold answer's tokens, ``-100`` where padded or unlabeled;
* ``choice_ids`` ``(B, C, L)`` long and ``choice_mask`` ``(B, C, L)``: every candidate's tokens;
  ``choice_valid`` ``(B, C)`` bool marks real candidates (examples have different counts);
* ``labels`` ``(B,)`` long, the gold candidate's index or ``-1``;
* ``examples``: the :class:`rpt.data.Example` objects, for metrics and predictions.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

NEG_INF = float("-inf")


class Backbone(nn.Module):
    """A frozen language model plus whatever small trainable part its family needs."""

    family: ClassVar[str]

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int = 512):
        super().__init__()
        # Frozen once and for all: no gradient buffers are ever allocated for these weights.
        self.model = model.requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.pad_id = int(tokenizer.pad_token_id)
        eos = (
            tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        )
        self.eos_id = int(eos)

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def embed_dim(self) -> int:
        """Width ``d`` of the input embeddings, i.e. of every prompt vector."""
        return int(self.model.get_input_embeddings().weight.shape[1])

    @property
    def input_embeddings(self) -> Tensor:
        """The frozen ``(V, d)`` embedding matrix (used to initialise prompts)."""
        return self.model.get_input_embeddings().weight

    def trainable_head(self) -> nn.Module | None:
        """Trainable parameters besides the prompt (the encoder's classification head)."""
        return None

    # ---- featurisation -----------------------------------------------------------------------
    def tokenize(self, text: str, special_tokens: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=special_tokens)["input_ids"]

    def featurize(
        self, source: str, choices: tuple[str, ...], target: str | None, prompt_length: int
    ):
        """Token ids for one example: ``{"source", "choices", "target"}`` (lists of ints).

        The source is truncated so that prompt + source (+ the longest answer, for causal LMs)
        fits ``max_length``: truncation makes room for the prompt instead of cutting it.
        """
        choice_ids = [self.answer_ids(c) for c in choices]
        target_ids = self.answer_ids(target) if target is not None else []
        room = self.max_length - prompt_length - self.answer_room(choice_ids, target_ids)
        if room < 2:
            raise ValueError(
                f"prompt.length={prompt_length} leaves no room for the input: model.max_length is "
                f"{self.max_length}. Use a shorter prompt or a larger model.max_length."
            )
        return {
            "source": self.source_ids(source, room),
            "choices": choice_ids,
            "target": target_ids,
        }

    def source_ids(self, text: str, room: int) -> list[int]:
        """Input ids with the family's special tokens, at most ``room`` long (end token kept)."""
        ids = self.tokenize(text, special_tokens=True)
        if len(ids) <= room:
            return ids
        # Keep the closing special token (T5's </s>, BERT's [SEP]) when cutting the text.
        return ids[: room - 1] + ids[-1:]

    def answer_ids(self, text: str) -> list[int]:
        """Ids of an answer text as the model must produce it (ends with EOS)."""
        return self.tokenize(text, special_tokens=False) + [self.eos_id]

    def answer_room(self, choice_ids: list[list[int]], target_ids: list[int]) -> int:
        """How many input positions the answer occupies (only causal LMs put it in the input)."""
        return 0

    # ---- prompt placement --------------------------------------------------------------------
    def embed_with_prompt(self, ids: Tensor, mask: Tensor, prompt: Tensor) -> tuple[Tensor, Tensor]:
        """Place the prompt among the token embeddings (in front; see ``place_prompt``) and
        extend the mask.

        ids, mask: ``(B, T)``; prompt: ``(n, d)``. Returns ``(B, n+T, d)`` and ``(B, n+T)``.
        """
        tokens = self.model.get_input_embeddings()(ids)  # (B, T, d)
        batch = ids.shape[0]
        prompt = prompt.to(tokens.dtype).unsqueeze(0).expand(batch, -1, -1)  # (B, n, d)
        ones = mask.new_ones(batch, prompt.shape[1])
        return self.place_prompt(tokens, prompt), self.place_prompt(mask, ones)

    def place_prompt(self, tokens: Tensor, prompt_part: Tensor) -> Tensor:
        """Join ``(B, T, ...)`` token columns and ``(B, n, ...)`` prompt columns, prompt first:
        ``(B, n+T, ...)``. Families that place it elsewhere override this alone."""
        return torch.cat([prompt_part, tokens], dim=1)

    # ---- the three things a family must do ---------------------------------------------------
    def loss(self, batch: dict[str, Any], prompt: Tensor) -> Tensor:
        raise NotImplementedError

    def choice_scores(self, batch: dict[str, Any], prompt: Tensor) -> Tensor:
        """``(B, C)`` scores of every candidate; ``-inf`` where ``choice_valid`` is False."""
        raise NotImplementedError

    def generate(self, batch: dict[str, Any], prompt: Tensor, max_new_tokens: int) -> list[str]:
        raise NotImplementedError

    # ---- shared helpers ----------------------------------------------------------------------
    def greedy_decode(self, embeds: Tensor, mask: Tensor, max_new_tokens: int) -> list[str]:
        """Greedy answers from input embeddings ``(B, T, d)`` (prompt included) and mask ``(B, T)``.

        With ``inputs_embeds``, ``generate`` returns only the new tokens for decoder-only models
        and the decoder's tokens for encoder-decoders: either way, just the answer.
        """
        out = self.model.generate(
            inputs_embeds=embeds,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=self.eos_id,
            pad_token_id=self.pad_id,
        )
        return self.decode(out)

    def decode(self, ids: Tensor) -> list[str]:
        return [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]


def sequence_logprob(logits: Tensor, labels: Tensor) -> Tensor:
    """Sum of log p(label) over the positions where ``labels != -100``.

    logits: ``(N, L, V)``; labels: ``(N, L)``. Returns ``(N,)``.
    """
    logprobs = torch.log_softmax(logits.float(), dim=-1)  # (N, L, V)
    keep = labels != -100
    picked = logprobs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (N, L)
    return (picked * keep).sum(-1)


def flatten_choices(batch: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
    """``(B, C, L)`` candidates to ``(B*C, L)`` labels with ``-100`` padding; plus row ids.

    Returns ``labels (B*C, L)``, ``row (B*C,)`` (which example each candidate belongs to) and
    ``valid (B*C,)``.
    """
    ids, mask, valid = batch["choice_ids"], batch["choice_mask"], batch["choice_valid"]
    b, c, length = ids.shape
    labels = ids.masked_fill(mask == 0, -100).reshape(b * c, length)
    row = torch.arange(b, device=ids.device).repeat_interleave(c)
    return labels, row, valid.reshape(b * c)


def scatter_scores(scores: Tensor, valid: Tensor, batch_size: int) -> Tensor:
    """``(B*C,)`` flat scores to ``(B, C)`` with ``-inf`` for padded candidates."""
    return scores.masked_fill(~valid, NEG_INF).reshape(batch_size, -1)


def cross_entropy_over_choices(scores: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of ``(B, C)`` scores against gold indices ``(B,)``."""
    return nn.functional.cross_entropy(scores, labels, ignore_index=-1)


def cache_of(output: Any) -> Any:
    """The key/value cache a forward pass returned (``cache`` in transformers 5, older
    ``past_key_values``); ``None`` if there is none."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)


def forward_parameters(model: Any) -> frozenset[str]:
    """The keywords ``model.forward`` takes; they vary across models and transformers versions.
    Read once per model class (this runs on every step)."""
    return _forward_parameters_of(type(model))


@functools.cache
def _forward_parameters_of(cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def cache_keyword(model: Any) -> str:
    """The keyword ``model.forward`` takes its cache by (renamed ``cache`` in transformers 5)."""
    return "cache" if "cache" in forward_parameters(model) else "past_key_values"
