"""Training samplers whose order is a pure function of (seed, epoch).

Because the order is recomputed from the seed and the epoch number, a run resumed from an
end-of-epoch checkpoint sees exactly the batches an uninterrupted run would have seen.
Lightning calls ``set_epoch`` on any sampler that has it. It wraps ``EpochSeededSampler`` for
distributed runs; ``LengthGroupedSampler`` shards itself (``num_replicas``, ``rank``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DistributedSampler, Sampler


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


class LengthGroupedSampler(DistributedSampler):
    """Batches of examples of similar length, in an order drawn from ``(seed, epoch)``.

    Dynamic padding pads a batch to its longest example, so a random batch of short and long
    inputs pays for the long one ``batch_size`` times. This sampler keeps the randomness of
    which examples train together *across* batches while making each batch nearly uniform in
    length (the scheme of Hugging Face's ``group_by_length``, made reproducible and sharded):

    1. shuffle all indices with a generator seeded by ``seed + epoch``;
    2. pad the list to a multiple of ``num_replicas`` by repeating its head (as
       :class:`~torch.utils.data.DistributedSampler` does), so every process gets as many
       examples and therefore runs as many steps;
    3. cut it into windows of ``window`` global batches (``batch_size × num_replicas``
       examples each), sort each window by length and cut it into global batches;
    4. shuffle the global batches, then move the one holding the longest example to the front
       so that an out-of-memory error shows at step 0, not hours into the run;
    5. process ``rank`` takes every ``num_replicas``-th example of each global batch: all
       processes get batches of the same length at the same step, so none waits for another.

    It subclasses ``DistributedSampler`` so that Lightning leaves it alone instead of wrapping
    it in a ``DistributedSamplerWrapper`` (whose shuffle would undo the grouping); Lightning
    still calls ``set_epoch`` on it every epoch.

    Args:
        lengths: one length per example (tokens of its padded input), ``len(lengths) = N``.
        batch_size: examples per batch and process.
        seed: with the epoch, the only source of randomness.
        num_replicas, rank: the number of processes and this one's index.
        window: global batches sorted together (Hugging Face uses 50). Smaller windows keep more
            randomness in which examples meet; larger ones pad less.

    Yields ``ceil(N / num_replicas)`` indices per epoch; over all processes every example
    appears once, plus ``< num_replicas`` repeats when ``N`` does not divide evenly.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        window: int = 50,
    ):
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        if window < 1:
            raise ValueError(f"window must be >= 1 global batch, got {window}")
        self.lengths = [int(n) for n in lengths]
        super().__init__(
            self.lengths, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed
        )
        self.batch_size = batch_size
        self.window = window

    def __len__(self) -> int:
        return self.num_samples

    def global_batches(self) -> list[list[int]]:
        """Every process's indices as global batches, in training order (steps 1-4)."""
        size = len(self.lengths)
        if size == 0:
            return []
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(size, generator=generator).tolist()
        # Repeat the head until every process gets num_samples indices (never more than once
        # per example, except when there are fewer examples than processes).
        while len(order) < self.total_size:
            order += order[: self.total_size - len(order)]

        group = self.batch_size * self.num_replicas
        span = group * self.window
        batches: list[list[int]] = []
        for start in range(0, len(order), span):
            # Stable sort, longest first: ties keep their random order.
            chunk = sorted(order[start : start + span], key=lambda i: -self.lengths[i])
            batches += [chunk[k : k + group] for k in range(0, len(chunk), group)]

        # Only the very last batch can be short; it stays last so that every full per-process
        # batch stays aligned with the DataLoader's batch_size.
        tail = [batches.pop()] if len(batches[-1]) < group else []
        perm = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in perm]
        if batches:
            longest = max(range(len(batches)), key=lambda b: self.lengths[batches[b][0]])
            batches.insert(0, batches.pop(longest))
        return batches + tail

    def __iter__(self) -> Iterator[int]:
        # Step 5: a strided share of every global batch (each has a multiple of num_replicas).
        return iter(
            [i for batch in self.global_batches() for i in batch[self.rank :: self.num_replicas]]
        )
