"""Dynamic padding: a batch is padded to its own longest example, never to a fixed 512."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """Right-pad lists of ids to ``(N, max_len)`` (at least one column)."""
    width = max([1, *(len(r) for r in rows)])
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


class Collator:
    """Turns featurised examples into the batch described in :mod:`rpt.backbones.base`."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        sources = [f["source"] for f in features]
        source_ids = pad(sources, self.pad_id)  # (B, S)
        source_mask = pad([[1] * len(s) for s in sources], 0)  # (B, S)

        num_choices = max([1, *(len(f["choices"]) for f in features)])
        longest = max([1, *(len(c) for f in features for c in f["choices"])])
        choice_ids = torch.full(
            (len(features), num_choices, longest), self.pad_id, dtype=torch.long
        )
        choice_mask = torch.zeros_like(choice_ids)
        for i, f in enumerate(features):
            for j, ids in enumerate(f["choices"]):
                choice_ids[i, j, : len(ids)] = torch.as_tensor(ids)
                choice_mask[i, j, : len(ids)] = 1
        choice_valid = choice_mask.any(-1)  # (B, C)

        labels = [f["example"].label for f in features]
        return {
            "source_ids": source_ids,
            "source_mask": source_mask,
            "target_ids": pad([f["target"] for f in features], -100),  # (B, L)
            "choice_ids": choice_ids,  # (B, C, L)
            "choice_mask": choice_mask,
            "choice_valid": choice_valid,
            "labels": torch.tensor([-1 if y is None else y for y in labels], dtype=torch.long),
            "index": torch.tensor([f["index"] for f in features], dtype=torch.long),
            "examples": [f["example"] for f in features],
        }
