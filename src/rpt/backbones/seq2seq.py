"""Encoder-decoder backbones (T5, Flan-T5, mT5, BART).

The prompt goes in front of the encoder input; the label text is the decoder target.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from transformers.modeling_outputs import BaseModelOutput

from rpt.backbones.base import (
    Backbone,
    cache_keyword,
    cache_of,
    flatten_choices,
    scatter_scores,
    sequence_logprob,
)


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
        cache; then each candidate index runs its remaining label positions from that cache,
        which is cropped back to the first position after each. Repeating the cache over the
        candidates instead would copy the keys and values (as slow, on a CPU, as recomputing
        them: docs/performance.md).
        """
        embeds, mask = self._encoder_inputs(batch, prompt)  # (B, n+S, d), (B, n+S)
        encoded = BaseModelOutput(
            last_hidden_state=self.model.get_encoder()(inputs_embeds=embeds, attention_mask=mask)[0]
        )
        labels, row, valid = flatten_choices(batch)  # (B*C, L), (B*C,), (B*C,)
        size, count, length = embeds.shape[0], labels.shape[0] // embeds.shape[0], labels.shape[1]
        # Shifted right: (start, y_1, ..., y_{L-1}); the start token is the same for every row.
        decoder_ids = self.model.prepare_decoder_input_ids_from_labels(labels=labels)  # (B*C, L)
        decoder_ids = decoder_ids.view(size, count, length)
        first = self.model(
            encoder_outputs=encoded,
            attention_mask=mask,
            decoder_input_ids=decoder_ids[:, 0, :1],  # (B, 1)
            use_cache=True,
        )
        logits = first.logits[row]  # (B*C, 1, V): every candidate's first token
        cache = cache_of(first)
        if length > 1 and hasattr(cache, "crop"):
            tails = []
            for c in range(count):
                out = self.model(
                    encoder_outputs=encoded,
                    attention_mask=mask,
                    decoder_input_ids=decoder_ids[:, c, 1:],  # (B, L-1)
                    use_cache=True,
                    **{cache_keyword(self.model): cache},
                )
                tails.append(out.logits)  # (B, L-1, V)
                cache.crop(-(length - 1))  # back to the shared first position
            tail = torch.stack(tails, dim=1).flatten(0, 1)  # (B*C, L-1, V), rows as `labels`
            logits = torch.cat([logits, tail], dim=1)  # (B*C, L, V)
        elif length > 1:  # no croppable cache (older transformers): a full pass per candidate
            out = self.model(
                encoder_outputs=BaseModelOutput(last_hidden_state=encoded[0][row]),
                attention_mask=mask[row],
                decoder_input_ids=decoder_ids.flatten(0, 1),
            )
            logits = torch.cat([logits, out.logits[:, 1:]], dim=1)
        return scatter_scores(sequence_logprob(logits, labels), valid, size)

    def generate(self, batch: dict[str, Any], prompt: Tensor, max_new_tokens: int) -> list[str]:
        embeds, mask = self._encoder_inputs(batch, prompt)
        return self.greedy_decode(embeds, mask, max_new_tokens)
