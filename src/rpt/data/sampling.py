"""Seeded data selection: few-shot subsets, training caps, and carved train/validation splits.

Everything here depends on ``data_seed`` only, never on ``seed``: a seed-variance study that
varies ``seed`` trains every run on the very same examples.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def k_per_class(examples: Sequence[T], k: int, data_seed: int, by_class: bool = True) -> list[T]:
    """k examples of each gold label; k in total when ``by_class`` is False (COPA, ReCoRD).

    The result keeps the file order, so it does not depend on how classes were grouped.
    """
    if k <= 0:
        raise ValueError(f"data.k_per_class must be > 0, got {k}")
    rng = random.Random(data_seed)
    if not by_class:
        chosen = rng.sample(range(len(examples)), min(k, len(examples)))
        return [examples[i] for i in sorted(chosen)]
    by_label: dict[object, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_label[getattr(ex, "label", None)].append(i)
    chosen = []
    for label in sorted(by_label, key=str):
        members = by_label[label]
        chosen += rng.sample(members, min(k, len(members)))
    return [examples[i] for i in sorted(chosen)]


def cap(examples: Sequence[T], limit: int, data_seed: int) -> list[T]:
    """A seeded random subset of at most ``limit`` examples, in file order."""
    if limit <= 0:
        raise ValueError(f"data.max_train_examples must be > 0, got {limit}")
    if len(examples) <= limit:
        return list(examples)
    chosen = random.Random(data_seed).sample(range(len(examples)), limit)
    return [examples[i] for i in sorted(chosen)]


def carve(
    examples: Sequence[T], val_fraction: float, data_seed: int, key=lambda ex: ex
) -> tuple[list[T], list[T]]:
    """Split one labelled split into (train, validation) by ``data_seed``.

    ``key`` maps an example to the unit that must not straddle the two parts (MultiRC: the
    paragraph), so no passage is seen in training and then scored in validation.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"data.carve.val_fraction must be in (0, 1), got {val_fraction}")
    units = sorted({str(key(ex)) for ex in examples})
    random.Random(data_seed).shuffle(units)
    n_val = max(1, round(len(units) * val_fraction))
    val_units = set(units[:n_val])
    train = [ex for ex in examples if str(key(ex)) not in val_units]
    val = [ex for ex in examples if str(key(ex)) in val_units]
    return train, val
