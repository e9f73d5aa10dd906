"""Decoder-only backbones (GPT-2, Llama, Qwen, …).

The prompt goes in front; the answer text follows the input and the loss covers only the
answer's tokens. Rows are left-padded, with position ids counted from each row's first real
token (the prompt): for generation, as batched greedy decoding needs; for training and scoring,
so that every answer ends at the last position and only the last positions need logits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rpt.backbones.base import (
    NEG_INF,
    Backbone,
    cache_keyword,
    cache_of,
    flatten_choices,
    forward_parameters,
    scatter_scores,
    sequence_logprob,
)

# A text that ends a word, used to see how the tokenizer starts a text and starts the next word.
ANCHOR = "."


class CausalBackbone(Backbone):
    family = "causal"

    def source_ids(self, text: str, room: int) -> list[int]:
        """The tokenizer's leading special tokens (Llama's ``<s>``; none for GPT-2), then the
        text's last ``room - len(lead)`` tokens. No closing special token: the answer continues
        the text."""
        lead = self.leading_special_ids()
        ids = self.tokenize(text, special_tokens=False)
        keep = max(room - len(lead), 0)
        return lead + (ids[-keep:] if keep else [])

    def leading_special_ids(self) -> list[int]:
        """What the tokenizer puts before a text (e.g. BOS), found by tokenising an anchor."""
        if getattr(self, "_lead", None) is None:
            with_special = self.tokenize(ANCHOR, special_tokens=True)
            plain = self.tokenize(ANCHOR, special_tokens=False)
            starts = [
                i for i in range(len(with_special)) if with_special[i : i + len(plain)] == plain
            ]
            self._lead = with_special[: starts[0]] if starts else []
        return self._lead

    def answer_ids(self, text: str) -> list[int]:
        """The answer's tokens as they follow the input in running text, then EOS.

        Tokenising ``" " + text`` alone is right for byte-level BPE (GPT-2, Qwen, Llama 3) but
        gives SentencePiece tokenizers (Llama 2, Mistral) a stray ``▁`` token; the tail of
        ``ANCHOR + " " + text`` after the anchor's own tokens is right for both.
        """
        anchor = self.tokenize(ANCHOR, special_tokens=False)
        joined = self.tokenize(f"{ANCHOR} {text}", special_tokens=False)
        if joined[: len(anchor)] == anchor and len(joined) > len(anchor):
            return joined[len(anchor) :] + [self.eos_id]
        return self.tokenize(" " + text, special_tokens=False) + [self.eos_id]

    def answer_room(self, choice_ids: list[list[int]], target_ids: list[int]) -> int:
        return max([len(target_ids), *(len(c) for c in choice_ids)])

    def _answer_logits(
        self, src: Tensor, src_mask: Tensor, answers: Tensor, prompt: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Next-token logits over the answer positions of ``[P] source answer`` rows.

        src, src_mask: ``(N, S)``; answers: ``(N, L)`` with ``-100`` padding. Returns logits
        ``(N, A, V)`` and their targets ``(N, A)`` (``-100`` but on answer tokens), where ``A``
        is the longest answer. The rows are left-padded so that every answer ends at the last
        position: the vocabulary projection (``d × V`` per position, a third of GPT-2's
        forward pass, and an ``(N, T, V)`` tensor) then runs on the last ``A + 1`` positions
        only, not on the whole input (docs/performance.md).
        """
        ids, mask, labels = join_rows(src, src_mask, answers, self.pad_id)  # (N, S+L) each
        embeds, full_mask = self.embed_with_prompt(ids, mask, prompt)  # (N, n+S+L, d)
        n = prompt.shape[0]
        labels = torch.cat([labels.new_full((labels.shape[0], n), -100), labels], dim=1)
        index = left_padding_index(full_mask)  # (N, T)
        embeds, full_mask, labels = (gather_columns(x, index) for x in (embeds, full_mask, labels))
        longest = int((answers != -100).sum(1).max())
        logits = self.model(
            inputs_embeds=embeds,
            attention_mask=full_mask,
            **self._left_padded_kwargs(full_mask, keep=longest + 1),
        ).logits
        # Position t predicts token t+1: the last A+1 positions predict the last A tokens.
        return logits[:, -(longest + 1) : -1], labels[:, labels.shape[1] - longest :]

    def _position_kwargs(self, after: Tensor, count: int) -> dict[str, Any]:
        """Position ids ``(B, count)`` for tokens that continue rows whose mask is ``after``, if
        this model's ``forward`` takes them (as in the full row: from each row's real length)."""
        if "position_ids" not in forward_parameters(self.model):
            return {}
        start = after.sum(1, keepdim=True)  # (B, 1)
        return {"position_ids": start + torch.arange(count, device=after.device)}

    def _left_padded_kwargs(self, mask: Tensor, keep: int) -> dict[str, Any]:
        """Position ids counted from each row's first real token, and the number of last
        positions that need logits, as far as this model's ``forward`` takes them.

        Models without ``position_ids`` (ALiBi: Bloom, MPT) take positions from the mask; without
        ``logits_to_keep`` (older transformers) every position gets logits, and the caller's
        slice gives the same result, only slower.
        """
        accepted = forward_parameters(self.model)
        kwargs: dict[str, Any] = {}
        if "position_ids" in accepted:
            kwargs["position_ids"] = (mask.cumsum(1) - 1).clamp(min=0)  # (N, T)
        if "logits_to_keep" in accepted:
            kwargs["logits_to_keep"] = keep
        return kwargs

    def loss(self, batch: dict[str, Any], prompt: Tensor) -> Tensor:
        logits, targets = self._answer_logits(
            batch["source_ids"], batch["source_mask"], batch["target_ids"], prompt
        )
        return nn.functional.cross_entropy(
            logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100
        )

    def choice_scores(self, batch: dict[str, Any], prompt: Tensor) -> Tensor:
        """Log-likelihood of each candidate after ``[P] source``: ``(B, C)``, ``-inf`` padding.

        ``[P] source`` runs once per example, not once per candidate: left-padded, with a
        cache, and its last position's logits score every candidate's first token; then each
        candidate index runs its remaining tokens from that cache, which is cropped back after
        each. Without a croppable cache (older transformers) every ``[P] source candidate`` row
        runs in full.
        """
        embeds, mask = self.embed_with_prompt(batch["source_ids"], batch["source_mask"], prompt)
        embeds, mask = to_left_padding(embeds, mask)  # (B, n+S, d), (B, n+S)
        out = self.model(
            inputs_embeds=embeds,
            attention_mask=mask,
            use_cache=True,
            **self._left_padded_kwargs(mask, keep=1),
        )
        cache = cache_of(out)
        if not hasattr(cache, "crop"):
            return self.choice_scores_full_rows(batch, prompt)
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (B, V)
        ids, choice_mask = batch["choice_ids"], batch["choice_mask"]  # (B, C, L)
        length = ids.shape[2]
        scores = []
        for c in range(ids.shape[1]):
            tokens, real = ids[:, c], choice_mask[:, c]  # (B, L)
            score = first.gather(1, tokens[:, :1]).squeeze(1) * real[:, 0]  # (B,)
            if length > 1:
                step = self.model(
                    input_ids=tokens[:, :-1],
                    attention_mask=torch.cat([mask, real[:, :-1]], dim=1),
                    use_cache=True,
                    **{cache_keyword(self.model): cache},
                    **self._position_kwargs(after=mask, count=length - 1),
                )
                cache.crop(-(length - 1))  # back to [P] source
                logprobs = torch.log_softmax(step.logits.float(), dim=-1)  # (B, L-1, V)
                picked = logprobs.gather(-1, tokens[:, 1:, None]).squeeze(-1)  # (B, L-1)
                score = score + (picked * real[:, 1:]).sum(1)
            scores.append(score)
        valid = batch["choice_valid"]
        return torch.stack(scores, dim=1).masked_fill(~valid, NEG_INF)  # (B, C)

    def choice_scores_full_rows(self, batch: dict[str, Any], prompt: Tensor) -> Tensor:
        """Every ``[P] source candidate`` row in full: ``(B, C)``."""
        answers, row, valid = flatten_choices(batch)  # (B*C, L)
        logits, targets = self._answer_logits(
            batch["source_ids"][row], batch["source_mask"][row], answers, prompt
        )
        scores = sequence_logprob(logits, targets)  # (B*C,)
        return scatter_scores(scores, valid, batch["source_ids"].shape[0])

    def generate(self, batch: dict[str, Any], prompt: Tensor, max_new_tokens: int) -> list[str]:
        embeds, mask = self.embed_with_prompt(batch["source_ids"], batch["source_mask"], prompt)
        embeds, mask = to_left_padding(embeds, mask)
        return self.greedy_decode(embeds, mask, max_new_tokens)


def join_rows(
    src: Tensor, src_mask: Tensor, answers: Tensor, pad_id: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Concatenate each row's real source tokens with its answer tokens, right-padded.

    Returns ids, mask and labels, each ``(N, S+L)``; labels are ``-100`` except on the answer.
    """
    ids, labels = [], []
    for i in range(src.shape[0]):
        source = src[i, : int(src_mask[i].sum())]
        answer = answers[i][answers[i] != -100]
        ids.append(torch.cat([source, answer]))
        labels.append(torch.cat([torch.full_like(source, -100), answer]))
    lengths = torch.tensor([len(r) for r in ids], device=src.device)
    ids_t = nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=pad_id)
    labels_t = nn.utils.rnn.pad_sequence(labels, batch_first=True, padding_value=-100)
    mask = (torch.arange(ids_t.shape[1], device=src.device) < lengths[:, None]).long()
    return ids_t, mask, labels_t


def left_padding_index(mask: Tensor) -> Tensor:
    """``(B, T)`` column order that moves each right-padded row's padding to the left end
    (``x.gather(1, index)``)."""
    length = mask.shape[1]
    shift = length - mask.sum(1)  # (B,) pads per row
    return (torch.arange(length, device=mask.device)[None, :] - shift[:, None]) % length


def gather_columns(x: Tensor, index: Tensor) -> Tensor:
    """``x`` ``(B, T)`` or ``(B, T, d)`` with its columns reordered by ``index`` ``(B, T)``."""
    return x.gather(1, index if x.dim() == 2 else index.unsqueeze(-1).expand_as(x))


def to_left_padding(embeds: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Move each row's padding from the right end to the left: ``(B, T, d)``, ``(B, T)``."""
    index = left_padding_index(mask)
    return gather_columns(embeds, index), gather_columns(mask, index)
