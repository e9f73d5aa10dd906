"""Plain prompt tuning (Lester et al., 2021): P' = P, no network."""

from __future__ import annotations

from torch import Tensor

from rpt.prompts.base import Reparameterizer

__all__ = ["PlainPrompt"]


class PlainPrompt(Reparameterizer):
    """The raw prompt is the prompt: transform is the identity, `(n, d) -> (n, d)`."""

    def transform(self, prompt: Tensor) -> Tensor:
        return prompt  # (n, d)

    def expected_num_parameters(self) -> int:
        return self.length * self.dim
