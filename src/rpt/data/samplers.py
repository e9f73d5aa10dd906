"""Training samplers whose order is a pure function of (seed, epoch).

Because the order is recomputed from the seed and the epoch number, a run resumed from an
end-of-epoch checkpoint sees exactly the batches an uninterrupted run would have seen.
Lightning calls ``set_epoch`` on any sampler that has it, and wraps these samplers for
distributed runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochSeededSampler(Sampler[int]):
    """A random permutation of ``range(size)`` drawn from ``seed + epoch``."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())
