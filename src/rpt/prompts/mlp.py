"""MLP reparameterizers: `mlp1`, `mlp2` and their residual variants (the paper's method).

A block is the paper's bottleneck network Phi, applied to every prompt token independently:

    Phi(x) = [LayerNorm](Dropout(W_up · act(W_down · x + b_down) + b_up))    # x: (d,), W_down: (m, d)

`MLPPrompt` stacks `num_blocks` blocks, P' = Phi_k(...Phi_1(P)); `ResidualMLPPrompt` adds the
skip connection of Residual Prompt Tuning, P' = P + Phi_k(...Phi_1(P)).

Weights use PyTorch's default `nn.Linear` initialisation (U(±1/sqrt(fan_in))) and LayerNorm's
(weight 1, bias 0), exactly as the original code. At step 0 the residual network therefore
outputs P plus a layer-normalised term of unit RMS per token: a sensible, non-degenerate
function whose gradient reaches both P and the network. Note that this term is large next to
small-scale embeddings (BERT's are ~0.05 per element), which is what the paper ran.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rpt.prompts.base import Reparameterizer, check_choice, check_int

__all__ = ["ACTIVATIONS", "MLPBlock", "MLPPrompt", "PerTokenMLPBlock", "ResidualMLPPrompt"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}
RESIDUAL_SCOPES = ("network", "block")


def make_activation(name: str) -> nn.Module:
    """Build the activation called `name`; raise a ValueError listing the valid names."""
    return ACTIVATIONS[check_choice("prompt.net.activation", name, list(ACTIVATIONS))]()


class MLPBlock(nn.Module):
    """One bottleneck block shared by all prompt tokens, `(n, d) -> (n, d)`.

    Linear(d -> m) -> activation -> Linear(m -> d) -> Dropout -> [LayerNorm(d)]; the same
    order as the original code (dropout before the layer norm).
    """

    def __init__(
        self, dim: int, bottleneck: int, activation: str, layer_norm: bool, dropout: float
    ) -> None:
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.act = make_activation(activation)
        self.up = nn.Linear(bottleneck, dim)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim) if layer_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.down(x))  # (n, m)
        return self.norm(self.dropout(self.up(h)))  # (n, d)


class PerTokenMLPBlock(nn.Module):
    """A separate bottleneck block for each of the n prompt tokens, `(n, d) -> (n, d)`.

    The n blocks are stored as batched tensors and applied with one einsum each, instead of n
    modules run in a Python loop (the original code's dict of MLPs). Each token also has its own
    layer-norm affine parameters, as each of the original per-token MLPs had its own LayerNorm.

    Parameters: down_weight (n, d, m), down_bias (n, m), up_weight (n, m, d), up_bias (n, d),
    and with layer_norm norm_weight (n, d), norm_bias (n, d).
    """

    def __init__(
        self,
        length: int,
        dim: int,
        bottleneck: int,
        activation: str,
        layer_norm: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.down_weight = nn.Parameter(torch.empty(length, dim, bottleneck))
        self.down_bias = nn.Parameter(torch.empty(length, bottleneck))
        self.act = make_activation(activation)
        self.up_weight = nn.Parameter(torch.empty(length, bottleneck, dim))
        self.up_bias = nn.Parameter(torch.empty(length, dim))
        self.dropout = nn.Dropout(dropout)
        if layer_norm:
            self.norm_weight = nn.Parameter(torch.ones(length, dim))
            self.norm_bias = nn.Parameter(torch.zeros(length, dim))
        else:
            self.register_parameter("norm_weight", None)
            self.register_parameter("norm_bias", None)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # Same distribution as nn.Linear's default (kaiming_uniform with a=sqrt(5) reduces to
        # U(±1/sqrt(fan_in)) for weights and biases), so per_token=True changes only the
        # sharing, not the scale at step 0.
        for weight, bias in ((self.down_weight, self.down_bias), (self.up_weight, self.up_bias)):
            bound = 1.0 / math.sqrt(weight.shape[1])  # fan_in
            weight.uniform_(-bound, bound)
            bias.uniform_(-bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.einsum("nd,ndm->nm", x, self.down_weight) + self.down_bias  # (n, m)
        h = self.act(h)
        y = torch.einsum("nm,nmd->nd", h, self.up_weight) + self.up_bias  # (n, d)
        y = self.dropout(y)
        if self.norm_weight is not None:
            # Normalise without affine, then apply each token's own scale and shift.
            y = F.layer_norm(y, (self.dim,)) * self.norm_weight + self.norm_bias  # (n, d)
        return y


class MLPPrompt(Reparameterizer):
    """P' = Phi_k(...Phi_1(P)): a stack of bottleneck MLP blocks without a skip connection.

    Args:
        length, dim: prompt tokens n and embedding width d (see `Reparameterizer`).
        bottleneck: hidden width m of each block (the paper uses 800).
        num_blocks: how many blocks are stacked (1 = "MLP1", 2 = "MLP2").
        activation: one of relu, tanh, gelu, sigmoid.
        layer_norm: end each block with LayerNorm(d) (the paper: on).
        dropout: dropout probability after the up-projection.
        per_token: a separate block per prompt token instead of one shared by all tokens.
        share_blocks: reuse one block's weights `num_blocks` times, as the original code's
            MLP2 does (`layers + layers`); the parameter count is then that of one block.

    Shapes: forward() -> (n, d).
    """

    def __init__(
        self,
        length: int,
        dim: int,
        bottleneck: int = 800,
        num_blocks: int = 1,
        activation: str = "relu",
        layer_norm: bool = True,
        dropout: float = 0.0,
        per_token: bool = False,
        share_blocks: bool = False,
    ) -> None:
        super().__init__(length, dim)
        if isinstance(bottleneck, bool) or not isinstance(bottleneck, int) or bottleneck <= 0:
            raise ValueError(f"prompt.net.bottleneck must be > 0, got {bottleneck!r}")
        self.bottleneck = bottleneck
        self.num_blocks = check_int("prompt.net.num_blocks", num_blocks, 1)
        self.activation = check_choice("prompt.net.activation", activation, list(ACTIVATIONS))
        if isinstance(dropout, bool) or not isinstance(dropout, int | float):
            raise ValueError(f"prompt.net.dropout must be a number in [0, 1), got {dropout!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"prompt.net.dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        for field, value in (
            ("layer_norm", layer_norm),
            ("per_token", per_token),
            ("share_blocks", share_blocks),
        ):
            if not isinstance(value, bool):
                raise ValueError(f"prompt.net.{field} must be true or false, got {value!r}")
        self.layer_norm = layer_norm
        self.per_token = per_token
        self.share_blocks = share_blocks

        # Only distinct blocks are registered: a shared block appears once in the state dict
        # (safetensors refuses tensors that alias each other) and once in the optimizer.
        num_distinct = 1 if share_blocks else num_blocks
        self.blocks = nn.ModuleList(self._make_block() for _ in range(num_distinct))

    def _make_block(self) -> nn.Module:
        if self.per_token:
            return PerTokenMLPBlock(
                self.length,
                self.dim,
                self.bottleneck,
                self.activation,
                self.layer_norm,
                self.dropout,
            )
        return MLPBlock(self.dim, self.bottleneck, self.activation, self.layer_norm, self.dropout)

    def block_sequence(self) -> list[nn.Module]:
        """The `num_blocks` blocks in application order (the same object repeated if shared)."""
        if self.share_blocks:
            return [self.blocks[0]] * self.num_blocks
        return list(self.blocks)

    def transform(self, prompt: Tensor) -> Tensor:
        x = prompt  # (n, d)
        for block in self.block_sequence():
            x = block(x)  # (n, d)
        return x

    def block_num_parameters(self) -> int:
        """Parameters of one block: d*m + m + m*d + d (+ 2d with layer norm), x n if per token."""
        d, m = self.dim, self.bottleneck
        count = d * m + m + m * d + d + (2 * d if self.layer_norm else 0)
        return count * self.length if self.per_token else count

    def expected_num_parameters(self) -> int:
        num_distinct = 1 if self.share_blocks else self.num_blocks
        return self.length * self.dim + num_distinct * self.block_num_parameters()

    def extra_repr(self) -> str:
        return (
            f"length={self.length}, dim={self.dim}, bottleneck={self.bottleneck}, "
            f"num_blocks={self.num_blocks}, per_token={self.per_token}, "
            f"share_blocks={self.share_blocks}"
        )


class ResidualMLPPrompt(MLPPrompt):
    """Residual Prompt Tuning: P' = P + Phi(P), with Phi the `MLPPrompt` block stack.

    For one block this is the paper's P' = P + LN(W_up · act(W_down · P)).

    Where the skip connection goes when there are several blocks (`residual_scope`):
      - "network" (default): P' = P + Phi_k(...Phi_1(P)). The paper defines the method as
        P'_i = Phi(P_i) + P_i with Phi the whole reparameterization network, and the original
        code does exactly this for MLP2 (`self.module(inputs) + inputs` around the two stacked
        blocks). With the default layer norm this also keeps P' = P + (a unit-RMS term)
        rather than summing k such terms.
      - "block": x = x + Phi_j(x) for each block j, a ResNet-style stack.
    Both are identical for one block.

    Args: those of `MLPPrompt`, plus `residual_scope` ("network" or "block").
    Shapes: forward() -> (n, d).
    """

    def __init__(
        self,
        length: int,
        dim: int,
        bottleneck: int = 800,
        num_blocks: int = 1,
        activation: str = "relu",
        layer_norm: bool = True,
        dropout: float = 0.0,
        per_token: bool = False,
        share_blocks: bool = False,
        residual_scope: str = "network",
    ) -> None:
        super().__init__(
            length,
            dim,
            bottleneck=bottleneck,
            num_blocks=num_blocks,
            activation=activation,
            layer_norm=layer_norm,
            dropout=dropout,
            per_token=per_token,
            share_blocks=share_blocks,
        )
        self.residual_scope = check_choice(
            "prompt.net.residual_scope", residual_scope, RESIDUAL_SCOPES
        )
        self._skip_each_block = residual_scope == "block"

    def transform(self, prompt: Tensor) -> Tensor:
        if not self._skip_each_block:
            return prompt + super().transform(prompt)  # (n, d)
        x = prompt  # (n, d)
        for block in self.block_sequence():
            x = x + block(x)  # (n, d)
        return x

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, residual_scope={self.residual_scope!r}"
