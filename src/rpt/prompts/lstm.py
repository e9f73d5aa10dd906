"""P-tuning-style reparameterizer (Liu et al., 2021): a BiLSTM over the prompt, then an MLP.

The original ResidualPrompts code has this as module type "LSTM" (BiLSTM with hidden size d/2,
2 layers, then Linear(d, d) -> ReLU -> Linear(d, d)), but its forward pass falls through to an
attribute the LSTM branch never creates, so it crashes; its "LSTM1"/"LSTM2" types skip the MLP
head. Here the skip connection is optional (`residual`), as in the original's other types.
Unlike the MLPs, the LSTM mixes information across prompt tokens.
"""

from __future__ import annotations

from torch import Tensor, nn

from rpt.prompts.base import Reparameterizer, check_int

__all__ = ["LSTMPrompt"]


class LSTMPrompt(Reparameterizer):
    """P' = [P +] MLP(BiLSTM(P)), `(n, d) -> (n, d)`.

    Args:
        length, dim: prompt tokens n and embedding width d (see `Reparameterizer`).
        hidden_size: LSTM hidden size h per direction; None means ceil(d / 2), so the two
            directions together are d wide (the original code's d // 2 for even d).
        num_layers: stacked LSTM layers.
        dropout: dropout between LSTM layers (ignored by PyTorch when num_layers == 1).
        residual: add the raw prompt to the output.

    The MLP head is Linear(2h -> d) -> ReLU -> Linear(d -> d).
    """

    def __init__(
        self,
        length: int,
        dim: int,
        hidden_size: int | None = None,
        num_layers: int = 2,
        dropout: float = 0.0,
        residual: bool = True,
    ) -> None:
        super().__init__(length, dim)
        if hidden_size is None:
            hidden_size = (dim + 1) // 2
        self.hidden_size = check_int("prompt.net.hidden_size", hidden_size, 1)
        self.num_layers = check_int("prompt.net.num_layers", num_layers, 1)
        if isinstance(dropout, bool) or not isinstance(dropout, int | float):
            raise ValueError(f"prompt.net.dropout must be a number in [0, 1), got {dropout!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"prompt.net.dropout must be in [0, 1), got {dropout}")
        if not isinstance(residual, bool):
            raise ValueError(f"prompt.net.residual must be true or false, got {residual!r}")
        self.residual = residual
        # Dropout between layers only exists for num_layers > 1; passing it otherwise only
        # makes PyTorch warn.
        self.lstm = nn.LSTM(
            input_size=dim,
            hidden_size=self.hidden_size,
            num_layers=num_layers,
            dropout=float(dropout) if num_layers > 1 else 0.0,
            bidirectional=True,
            batch_first=True,
        )
        self.head = nn.Sequential(
            nn.Linear(2 * self.hidden_size, dim),
            nn.ReLU(),
            nn.Linear(dim, dim),
        )

    def transform(self, prompt: Tensor) -> Tensor:
        h, _ = self.lstm(prompt.unsqueeze(0))  # (1, n, 2h): the prompt is one sequence
        out = self.head(h.squeeze(0))  # (n, d)
        return prompt + out if self.residual else out

    def expected_num_parameters(self) -> int:
        d, h = self.dim, self.hidden_size
        # Per layer and direction: W_ih (4h, in), W_hh (4h, h), b_ih (4h), b_hh (4h).
        lstm = 0
        for layer in range(self.num_layers):
            in_size = d if layer == 0 else 2 * h
            lstm += 2 * (4 * h * (in_size + h) + 8 * h)
        head = (2 * h * d + d) + (d * d + d)
        return self.length * d + lstm + head
