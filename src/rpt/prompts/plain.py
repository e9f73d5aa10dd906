"""Plain prompt tuning (Lester et al., 2021): P' = P, no network."""

from __future__ import annotations

from torch import Tensor

from rpt.prompts.base import Reparameterizer

__all__ = ["NoPrompt", "PlainPrompt"]


class PlainPrompt(Reparameterizer):
    """The raw prompt is the prompt: transform is the identity, `(n, d) -> (n, d)`."""

    def transform(self, prompt: Tensor) -> Tensor:
        return prompt  # (n, d)

    def expected_num_parameters(self) -> int:
        return self.length * self.dim


class NoPrompt(PlainPrompt):
    """No prompt at all (``prompt=head_only``): a baseline in which only an encoder's head trains.

    With it, a gain of prompt tuning over this baseline is credited to the prompt, not to the
    classification head. ``length`` must be 0; the prompt is an empty ``(0, d)`` tensor.
    """

    min_length = 0

    def __init__(self, length: int, dim: int) -> None:
        if length != 0:
            raise ValueError(
                f"prompt.length must be 0 for prompt=head_only (no prompt), got {length}"
            )
        super().__init__(length, dim)
