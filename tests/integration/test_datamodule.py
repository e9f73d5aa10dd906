"""The shared DataModule on real files: missing splits, carving, few-shot, caps, padding."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from rpt.data.datamodule import SuperGLUEDataModule
from rpt.data.readers import DataError
from rpt.data.tasks import get_task

pytestmark = pytest.mark.integration


def word_ids(source: str, choices: tuple[str, ...], target: str | None, prompt_length: int) -> dict:
    """A stand-in tokeniser: one id per word (no model needed to test the data plumbing)."""
    ids = lambda text: [len(w) for w in text.split()]  # noqa: E731
    return {
        "source": ids(source),
        "choices": [ids(c) for c in choices],
        "target": ids(target or ""),
    }


def make(
    task: str, data_dir: Path, data_seed: int = 0, seed: int = 0, **data
) -> SuperGLUEDataModule:
    cfg = {"dir": str(data_dir), "source": "local", "batch_size": 8, "eval_batch_size": 16, **data}
    return SuperGLUEDataModule(get_task(task), word_ids, 0, 10, cfg, seed=seed, data_seed=data_seed)


def test_missing_split_is_named_plainly(data_dir: Path) -> None:
    dm = make("boolq", data_dir)
    with pytest.raises(DataError, match=r"BoolQ.*train"):
        dm.split_examples("train")


def test_carved_split_is_disjoint_seeded_and_logged(data_dir: Path) -> None:
    dm = make("boolq", data_dir, carve={"from": "val", "val_fraction": 0.5})
    train, val = dm.split_examples("train"), dm.split_examples("val")
    assert len(train) + len(val) == 3270
    assert not {ex.idx for ex in train} & {ex.idx for ex in val}
    assert any("carved" in note and "NOT the official" in note for note in dm.notes)
    again = make("boolq", data_dir, carve={"from": "val", "val_fraction": 0.5})
    assert [ex.idx for ex in again.split_examples("val")] == [ex.idx for ex in val]
    other = make("boolq", data_dir, data_seed=1, carve={"from": "val", "val_fraction": 0.5})
    assert [ex.idx for ex in other.split_examples("val")] != [ex.idx for ex in val]


def test_multirc_carving_keeps_paragraphs_whole(data_dir: Path) -> None:
    dm = make("multirc", data_dir, carve={"from": "val", "val_fraction": 0.3})
    paragraphs = lambda split: {ex.idx["paragraph"] for ex in dm.split_examples(split)}  # noqa: E731
    assert paragraphs("train") and paragraphs("val")
    assert not paragraphs("train") & paragraphs("val")


def test_k_per_class_depends_on_data_seed_only(data_dir: Path) -> None:
    picked = make("cb", data_dir, k_per_class=4).split_examples("train")
    counts = Counter(ex.label for ex in picked)
    assert sorted(counts.values()) == [4, 4, 4]
    same = make("cb", data_dir, seed=7, k_per_class=4).split_examples("train")
    assert [ex.idx for ex in same] == [ex.idx for ex in picked]  # `seed` does not change the data
    other = make("cb", data_dir, data_seed=3, k_per_class=4).split_examples("train")
    assert [ex.idx for ex in other] != [ex.idx for ex in picked]


def test_training_cap_and_copa_few_shot(data_dir: Path) -> None:
    assert len(make("rte", data_dir, max_train_examples=100).split_examples("train")) == 100
    assert len(make("copa", data_dir, k_per_class=16).split_examples("train")) == 16


def test_batches_are_padded_to_their_own_longest_example(data_dir: Path) -> None:
    dm = make("rte", data_dir)
    batch = next(iter(dm.val_dataloader()))
    lengths = batch["source_mask"].sum(1)
    assert batch["source_ids"].shape[1] == int(lengths.max()) < 512
    assert batch["index"].tolist() == list(range(16))


def test_training_order_is_a_function_of_seed_and_epoch(data_dir: Path) -> None:
    def order(seed: int, epoch: int) -> list[int]:
        loader = make("cb", data_dir, seed=seed).train_dataloader()
        loader.sampler.set_epoch(epoch)
        return [i for batch in loader for i in batch["index"].tolist()]

    assert order(0, 0) == order(0, 0)
    assert sorted(order(0, 0)) == list(range(250))
    assert order(0, 0) != order(0, 1) and order(0, 0) != order(1, 0)
