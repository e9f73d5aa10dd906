"""The length-grouped sampler: reproducible, complete, sharded, and actually grouping."""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DistributedSampler

from rpt.data.datamodule import SuperGLUEDataModule
from rpt.data.samplers import EpochSeededSampler, LengthGroupedSampler
from rpt.data.tasks import get_task


def random_lengths(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(3, 250) for _ in range(n)]


def epoch_indices(sampler, epoch: int) -> list[int]:
    sampler.set_epoch(epoch)
    return list(sampler)


def padded_tokens(lengths: list[int], order: list[int], batch_size: int) -> int:
    """Tokens a dynamically padded run computes: each batch padded to its longest example."""
    batches = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def test_same_seed_and_epoch_give_the_same_order_and_others_differ() -> None:
    lengths = random_lengths(300)
    a = LengthGroupedSampler(lengths, batch_size=8, seed=3)
    b = LengthGroupedSampler(lengths, batch_size=8, seed=3)
    assert epoch_indices(a, 0) == epoch_indices(b, 0)
    assert epoch_indices(a, 4) == epoch_indices(b, 4)
    assert epoch_indices(a, 0) != epoch_indices(a, 1)
    assert epoch_indices(a, 0) != epoch_indices(LengthGroupedSampler(lengths, 8, seed=4), 0)
    # A resumed run builds a new sampler and only sets the epoch: it must see the same order.
    assert epoch_indices(LengthGroupedSampler(lengths, 8, seed=3), 4) == epoch_indices(a, 4)


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 120),
    batch_size=st.integers(1, 9),
    window=st.integers(1, 4),
    epoch=st.integers(0, 3),
)
def test_one_process_sees_every_example_exactly_once(size, batch_size, window, epoch) -> None:
    sampler = LengthGroupedSampler(random_lengths(size, size), batch_size, seed=1, window=window)
    order = epoch_indices(sampler, epoch)
    assert sorted(order) == list(range(size))
    assert len(sampler) == size


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 120),
    batch_size=st.integers(1, 9),
    replicas=st.integers(2, 4),
    window=st.integers(1, 4),
)
def test_replicas_split_the_data_between_them(size, batch_size, replicas, window) -> None:
    lengths = random_lengths(size, size)
    shards = [
        epoch_indices(LengthGroupedSampler(lengths, batch_size, 7, replicas, rank, window), 2)
        for rank in range(replicas)
    ]
    # Same number of steps on every process, as DDP requires.
    assert len({len(s) for s in shards}) == 1
    counts = Counter(i for shard in shards for i in shard)
    assert set(counts) == set(range(size))
    # Repeats only pad the last step, like DistributedSampler: fewer than `replicas` of them.
    assert sum(counts.values()) - size == (-size) % replicas
    if size % replicas == 0:
        assert all(c == 1 for c in counts.values())


def test_two_replicas_are_disjoint_and_step_through_the_same_length_group() -> None:
    lengths, batch = random_lengths(400, 5), 8
    rank0, rank1 = (
        epoch_indices(LengthGroupedSampler(lengths, batch, 0, num_replicas=2, rank=r), 0)
        for r in (0, 1)
    )
    assert not set(rank0) & set(rank1)
    assert sorted(rank0 + rank1) == list(range(400))
    # At every step both processes hold halves of one sorted global batch, so their longest
    # inputs are close and neither waits long for the other.
    for step in range(0, 200, batch):
        a = max(lengths[i] for i in rank0[step : step + batch])
        b = max(lengths[i] for i in rank1[step : step + batch])
        assert abs(a - b) <= 10, (step, a, b)


def test_grouping_pads_far_less_than_random_batches_and_puts_the_longest_first() -> None:
    lengths, batch = random_lengths(1000, 9), 8
    grouped = epoch_indices(LengthGroupedSampler(lengths, batch, seed=0), 0)
    shuffled = epoch_indices(EpochSeededSampler(len(lengths), seed=0), 0)
    real = sum(lengths)
    assert padded_tokens(lengths, grouped, batch) < 1.1 * real
    assert padded_tokens(lengths, shuffled, batch) > 1.5 * real
    assert max(lengths[i] for i in grouped[:batch]) == max(lengths)
    # ...and the batches still come in a seeded random order, not sorted by length.
    firsts = [lengths[grouped[k]] for k in range(batch, len(grouped), batch)]
    assert firsts != sorted(firsts, reverse=True)


def test_datamodule_builds_it_with_the_trainers_rank(fixture_data_dir) -> None:
    def featurize(source, choices, target, prompt_length):
        return {
            "source": [5] * len(source.split()),
            "choices": [[1] for _ in choices],
            "target": [1],
        }

    data = {"dir": str(fixture_data_dir), "batch_size": 2, "group_by_length": True}
    dm = SuperGLUEDataModule(get_task("cb"), featurize, pad_id=0, prompt_length=4, data=data)
    size = len(dm.split_features("train"))
    dm.trainer = SimpleNamespace(distributed_sampler_kwargs={"num_replicas": 2, "rank": 1})
    sampler = dm.train_dataloader().sampler
    # A DistributedSampler is left alone by Lightning (no second, shuffling wrapper).
    assert isinstance(sampler, LengthGroupedSampler) and isinstance(sampler, DistributedSampler)
    assert (sampler.num_replicas, sampler.rank, len(sampler)) == (2, 1, -(-size // 2))
    batch = next(iter(dm.train_dataloader()))
    assert batch["source_ids"].shape[0] <= 2 and batch["source_ids"].dtype == torch.long

    dm.cfg["group_by_length"] = False
    assert isinstance(dm.train_dataloader().sampler, EpochSeededSampler)


def test_bad_arguments_name_the_setting() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        LengthGroupedSampler([1, 2], batch_size=0)
    with pytest.raises(ValueError, match="window"):
        LengthGroupedSampler([1, 2], batch_size=2, window=0)
