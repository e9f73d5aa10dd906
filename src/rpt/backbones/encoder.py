"""Encoder-only backbones (BERT, RoBERTa, DeBERTa, MiniLM) with a small classification head.

The prompt goes after ``[CLS]`` (so ``[CLS]`` stays first, as the model was trained) or in
front, by config. A linear head over the pooled output is trained with the prompt and is part
of every checkpoint and export.

* Tasks with a fixed label set (CB, RTE, BoolQ, …): the head maps the pooled vector to one logit
  per label word.
* Tasks whose candidates differ per example (COPA, ReCoRD): every (input, candidate) pair is
  encoded and the head gives one score per pair.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rpt.backbones.base import Backbone, cross_entropy_over_choices, scatter_scores

POSITIONS = ("after_cls", "front")
POOLINGS = ("cls", "mean", "pooler")


class EncoderBackbone(Backbone):
    family = "encoder"

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        max_length: int = 512,
        num_classes: int | None = None,
        prompt_position: str = "after_cls",
        pooling: str = "cls",
    ):
        super().__init__(model, tokenizer, max_length)
        if prompt_position not in POSITIONS:
            raise ValueError(
                f"model.prompt_position must be one of {POSITIONS}, got {prompt_position!r}"
            )
        if pooling not in POOLINGS:
            raise ValueError(f"model.pooling must be one of {POOLINGS}, got {pooling!r}")
        if pooling == "pooler" and getattr(model, "pooler", None) is None:
            raise ValueError(
                f"model.pooling=pooler needs a model with a pooler; {type(model).__name__} has none"
            )
        self.prompt_position = prompt_position
        self.pooling = pooling
        self.num_classes = num_classes
        # One logit per label word, or one score per (input, candidate) pair.
        self.head = nn.Linear(self.embed_dim, num_classes or 1)

    def trainable_head(self) -> nn.Module:
        return self.head

    def answer_ids(self, text: str) -> list[int]:
        # A candidate is the second segment of a pair: "... [SEP] candidate [SEP]".
        return self.tokenize(text, special_tokens=False) + [self.eos_id]

    def answer_room(self, choice_ids: list[list[int]], target_ids: list[int]) -> int:
        # Pair-encoded candidates share the input window; label words never enter it.
        return 0 if self.num_classes else max((len(c) for c in choice_ids), default=0)

    @property
    def uses_segments(self) -> bool:
        """Whether the model has segment (token type) embeddings for A and B: BERT and MiniLM do;
        RoBERTa (one type) and DeBERTa-v2 (none) do not."""
        return int(getattr(self.model.config, "type_vocab_size", 0) or 0) >= 2

    def place_prompt(self, tokens: Tensor, prompt_part: Tensor) -> Tensor:
        """``P [CLS] x`` (front) or ``[CLS] P x`` (after_cls), in one concatenation:
        ``(N, T, ...)`` tokens and ``(N, n, ...)`` prompt columns to ``(N, n+T, ...)``."""
        if self.prompt_position == "front":
            return super().place_prompt(tokens, prompt_part)
        return torch.cat([tokens[:, :1], prompt_part, tokens[:, 1:]], dim=1)

    def _pool(
        self, ids: Tensor, mask: Tensor, prompt: Tensor, segments: Tensor | None = None
    ) -> Tensor:
        """Pooled vector per row: ``(N, d)`` for ``ids (N, T)``; ``segments (N, T)``: 1 on a pair's
        second text, as the tokenizer's ``token_type_ids``."""
        embeds, full_mask = self.embed_with_prompt(ids, mask, prompt)
        extra = {}
        if segments is not None and self.uses_segments:
            n = prompt.shape[0]
            # The prompt counts as segment A, as in PEFT's prompt tuning for classification.
            zeros = segments.new_zeros(segments.shape[0], n)
            extra["token_type_ids"] = self.place_prompt(segments, zeros)  # (N, n+T)
        hidden = self.model(
            inputs_embeds=embeds, attention_mask=full_mask, **extra
        ).last_hidden_state
        if self.pooling == "pooler":
            # The model's own pooler on position 0, as AutoModelForSequenceClassification does;
            # with prompt_position=front this is exactly PEFT's SEQ_CLS prompt tuning.
            return self.model.pooler(hidden)
        if self.pooling == "mean":
            weights = full_mask.to(hidden.dtype).unsqueeze(1)  # (N, 1, n+T)
            # A batched product: no (N, n+T, d) temporary, unlike (hidden * weights).sum(1).
            return torch.bmm(weights, hidden).squeeze(1) / weights.sum(-1)  # (N, d)
        cls_at = 0 if self.prompt_position == "after_cls" else prompt.shape[0]
        return hidden[:, cls_at]

    def choice_scores(self, batch: dict[str, Any], prompt: Tensor) -> Tensor:
        if self.num_classes:
            return self.head(self._pool(batch["source_ids"], batch["source_mask"], prompt))
        ids, mask, segments, valid = pair_inputs(batch, self.pad_id)  # (B*C, S+L) each
        scores = self.head(self._pool(ids, mask, prompt, segments)).squeeze(-1)  # (B*C,)
        return scatter_scores(scores, valid, batch["source_ids"].shape[0])  # (B, C)

    def loss(self, batch: dict[str, Any], prompt: Tensor) -> Tensor:
        return cross_entropy_over_choices(self.choice_scores(batch, prompt), batch["labels"])

    def generate(self, batch: dict[str, Any], prompt: Tensor, max_new_tokens: int) -> list[str]:
        """An encoder cannot generate: the answer is the head's best candidate."""
        best = self.choice_scores(batch, prompt).argmax(-1).tolist()
        return [ex.choices[i] for ex, i in zip(batch["examples"], best)]


def pair_inputs(batch: dict[str, Any], pad_id: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Concatenate each source with each of its candidates: ``[CLS] x [SEP] c [SEP]``.

    Returns ids, mask and segments ``(B*C, S+L)`` right-padded (segments: 1 on ``c [SEP]``, as
    a tokenizer's ``token_type_ids`` for a text pair), and ``valid (B*C,)``.
    """
    src, src_mask = batch["source_ids"], batch["source_mask"]  # (B, S)
    cand, cand_mask = batch["choice_ids"], batch["choice_mask"]  # (B, C, L)
    b, c, length = cand.shape
    rows, second = [], []
    for i in range(b):
        source = src[i, : int(src_mask[i].sum())]
        for j in range(c):
            candidate = cand[i, j, : int(cand_mask[i, j].sum())]
            rows.append(torch.cat([source, candidate]))
            second.append(torch.cat([torch.zeros_like(source), torch.ones_like(candidate)]))
    ids = nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=pad_id)
    segments = nn.utils.rnn.pad_sequence(second, batch_first=True, padding_value=0)
    lengths = torch.tensor([len(r) for r in rows], device=src.device)
    masks = (torch.arange(ids.shape[1], device=src.device) < lengths[:, None]).long()
    return ids, masks, segments, batch["choice_valid"].reshape(b * c)
