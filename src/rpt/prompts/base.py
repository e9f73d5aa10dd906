"""The reparameterizer contract: a raw prompt P and a map P -> P'.

Every prompt method in rpt is a `Reparameterizer`. It owns the trainable raw prompt
`self.prompt` (an `(n, d)` parameter) and, in subclasses, a small network. `forward()` takes no
input and returns the reparameterised prompt `P'` of shape `(n, d)`: it is computed once per
training step and broadcast over the batch by the caller, so the network's cost does not grow
with the batch size. After training, `P'` is computed once, exported, and the network is dropped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

__all__ = ["Reparameterizer", "check_choice", "check_int"]

# Range of the placeholder initialisation; the training module overwrites it with
# `initial_prompt(...)`. U(-0.5, 0.5) is the original code's "random uniform" range.
_PLACEHOLDER_RANGE = 0.5


def check_int(field: str, value: object, minimum: int) -> int:
    """Return `value` if it is an int >= `minimum`; otherwise raise a ValueError naming `field`."""
    # bool is an int subclass; `length: true` in a YAML file is a typo, not a length of 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{field} must be >= {minimum}, got {value}")
    return value


def check_choice(field: str, value: object, choices: tuple[str, ...] | list[str]) -> str:
    """Return `value` if it is one of `choices`; otherwise raise a ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{field} must be one of {', '.join(choices)}; got {value!r}")
    return value  # type: ignore[return-value]


class Reparameterizer(nn.Module, ABC):
    """Holds the raw prompt P `(n, d)` as `self.prompt` and maps it to P' `(n, d)`.

    Args:
        length: number of prompt tokens n (>= 1).
        dim: embedding width d of the backbone (>= 1).

    Shapes:
        forward() -> (n, d)
        transform(prompt: (n, d)) -> (n, d)

    Subclasses implement `transform` and `expected_num_parameters`. The raw prompt starts as
    U(-0.5, 0.5) so a freshly built reparameterizer is usable on its own; training code replaces
    it with `rpt.prompts.initial_prompt(...)` through `set_prompt_`.
    """

    #: The shortest prompt a subclass accepts (NoPrompt, the head-only baseline, takes 0).
    min_length: int = 1

    def __init__(self, length: int, dim: int) -> None:
        super().__init__()
        self.length = check_int("prompt.length", length, self.min_length)
        self.dim = check_int("dim (the backbone's embedding width)", dim, 1)
        prompt = torch.empty(length, dim).uniform_(-_PLACEHOLDER_RANGE, _PLACEHOLDER_RANGE)
        self.prompt = nn.Parameter(prompt)  # (n, d)

    def forward(self) -> Tensor:
        """Return P' `(n, d)`; call once per step and broadcast over the batch."""
        return self.transform(self.prompt)

    @abstractmethod
    def transform(self, prompt: Tensor) -> Tensor:
        """Map a prompt `(n, d)` to its reparameterised form `(n, d)`."""

    def network_parameters(self) -> list[nn.Parameter]:
        """Every trainable parameter except the raw prompt (the network gets its own lr)."""
        return [p for p in self.parameters() if p is not self.prompt and p.requires_grad]

    @abstractmethod
    def expected_num_parameters(self) -> int:
        """Closed-form parameter count from the constructor arguments, prompt included."""

    @torch.no_grad()
    def set_prompt_(self, values: Tensor) -> None:
        """Copy `values` `(n, d)` into the raw prompt in place (keeps the Parameter object)."""
        if tuple(values.shape) != (self.length, self.dim):
            raise ValueError(
                f"initial prompt must have shape ({self.length}, {self.dim}) "
                f"(prompt.length, dim), got {tuple(values.shape)}"
            )
        self.prompt.copy_(values.to(self.prompt))

    def extra_repr(self) -> str:
        return f"length={self.length}, dim={self.dim}"
