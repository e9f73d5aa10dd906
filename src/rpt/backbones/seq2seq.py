"""Encoder-decoder backbones (T5, Flan-T5, mT5, BART).

The prompt goes in front of the encoder input; the label text is the decoder target.
"""

from __future__ import annotations

from typing import Any

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
        """Log-likelihood of each candidate; the encoder runs once per example, not per candidate."""
        embeds, mask = self._encoder_inputs(batch, prompt)
        encoded = self.model.get_encoder()(inputs_embeds=embeds, attention_mask=mask)
        labels, row, valid = flatten_choices(batch)  # (B*C, L), (B*C,), (B*C,)
        hidden = encoded.last_hidden_state[row]  # (B*C, n+S, d)
        out = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
            attention_mask=mask[row],
            labels=labels,
        )
        return scatter_scores(sequence_logprob(out.logits, labels), valid, embeds.shape[0])

    def generate(self, batch: dict[str, Any], prompt: Tensor, max_new_tokens: int) -> list[str]:
        embeds, mask = self._encoder_inputs(batch, prompt)
        return self.greedy_decode(embeds, mask, max_new_tokens)
