"""Encoder-decoder backbones (T5, Flan-T5, mT5, BART).

The prompt goes in front of the encoder input; the label text is the decoder target.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor
from transformers.modeling_outputs import BaseModelOutput

from rpt.backbones.base import Backbone, flatten_choices, scatter_scores, sequence_logprob


class Seq2SeqBackbone(Backbone):
    family = "seq2seq"

    def _encoder_inputs(self, batch: dict[str, Any], prompt: Tensor) -> tuple[Tensor, Tensor]:
        return self.embed_with_prompt(batch["source_ids"], batch["source_mask"], prompt)

    def loss(self, batch: dict[str, Any], prompt: Tensor) -> Tensor:
        embeds, mask = self._encoder_inputs(batch, prompt)  # (B, n+S, d), (B, n+S)
        return self.model(
            inputs_embeds=embeds, attention_mask=mask, labels=batch["target_ids"]
        ).loss

    def choice_scores(self, batch: dict[str, Any], prompt: Tensor) -> Tensor:
        """Log-likelihood of each candidate ``(B, C)``; ``-inf`` where a candidate is padding.

        The encoder runs once per example, and so do the decoder's cross-attention keys and
        values over the input (``2 d²`` per input token per layer: recomputed per candidate they
        cost a third to a half of an encoder pass for 2-3 candidates). The decoder's first
        position, the start token every candidate shares, runs once per example and fills a
        cache; the cache is repeated over the candidates, and all candidates' remaining label
        positions run from it in one batched pass (docs/performance.md).
        """
        embeds, mask = self._encoder_inputs(batch, prompt)  # (B, n+S, d), (B, n+S)
        hidden = self.model.get_encoder()(inputs_embeds=embeds, attention_mask=mask)[0]
        labels, row, valid = flatten_choices(batch)  # (B*C, L), (B*C,), (B*C,)
        size, per_example = embeds.shape[0], labels.shape[0] // embeds.shape[0]
        # Shifted right: (start, y_1, ..., y_{L-1}); the start token is the same for every row.
        decoder_ids = self.model.prepare_decoder_input_ids_from_labels(labels=labels)  # (B*C, L)
        first = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
            attention_mask=mask,
            decoder_input_ids=decoder_ids[::per_example, :1],  # (B, 1)
            use_cache=True,
        )
        logits = first.logits[row]  # (B*C, 1, V): predicts y_1
        if labels.shape[1] > 1:
            cache = _cache_of(first)
            repeatable = hasattr(cache, "batch_repeat_interleave")
            if repeatable:
                cache.batch_repeat_interleave(per_example)  # (B, ...) -> (B*C, ...)
            rest = self.model(
                encoder_outputs=BaseModelOutput(last_hidden_state=hidden[row]),
                attention_mask=mask[row],
                # Without a repeatable cache (older transformers): a full pass per candidate.
                decoder_input_ids=decoder_ids[:, 1:] if repeatable else decoder_ids,
                **({_cache_argument(self.model): cache, "use_cache": True} if repeatable else {}),
            )
            tail = rest.logits if repeatable else rest.logits[:, 1:]
            logits = torch.cat([logits, tail], dim=1)  # (B*C, L, V)
        return scatter_scores(sequence_logprob(logits, labels), valid, size)

    def generate(self, batch: dict[str, Any], prompt: Tensor, max_new_tokens: int) -> list[str]:
        embeds, mask = self._encoder_inputs(batch, prompt)
        return self.greedy_decode(embeds, mask, max_new_tokens)


def _cache_of(output: Any) -> Any:
    """The key/value cache a forward pass returned (``cache`` in transformers 5, older
    ``past_key_values``)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)


def _cache_argument(model: Any) -> str:
    """The keyword ``model.forward`` takes its cache by (renamed ``cache`` in transformers 5)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
