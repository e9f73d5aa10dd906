"""The real SuperGLUE files under RPT_DATA_DIR: official sizes and well-formed examples.

Each (task, split) whose file is present is checked; absent ones (BoolQ train, ReCoRD in the
shared copy) are skipped with the reason. Runs in a few seconds: the files total ~11 MB.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest

from rpt.data import TASKS, Example, get_task
from rpt.data.readers import load_split

pytestmark = pytest.mark.integration

DATA_DIR = os.environ.get("RPT_DATA_DIR")
if not DATA_DIR:
    pytest.skip(
        "RPT_DATA_DIR is not set (point it at a folder in the official SuperGLUE layout)",
        allow_module_level=True,
    )

# Official sizes (examples: MultiRC counts answers, ReCoRD queries).
OFFICIAL_SIZES = {
    ("boolq", "train"): 9427,
    ("boolq", "val"): 3270,
    ("boolq", "test"): 3245,
    ("cb", "train"): 250,
    ("cb", "val"): 56,
    ("cb", "test"): 250,
    ("copa", "train"): 400,
    ("copa", "val"): 100,
    ("copa", "test"): 500,
    ("multirc", "train"): 27243,
    ("multirc", "val"): 4848,
    ("multirc", "test"): 9693,
    ("record", "train"): 100730,
    ("record", "val"): 10000,
    ("record", "test"): 10000,
    ("rte", "train"): 2490,
    ("rte", "val"): 277,
    ("rte", "test"): 3000,
    ("wic", "train"): 5428,
    ("wic", "val"): 638,
    ("wic", "test"): 1400,
    ("wsc", "train"): 554,
    ("wsc", "val"): 104,
    ("wsc", "test"): 146,
    ("axb", "test"): 1104,
    ("axg", "test"): 356,
}
LABELED_TEST = {"axb", "axg"}  # the diagnostics' single file is labeled


def test_every_split_has_an_official_size():
    assert set(OFFICIAL_SIZES) == {(n, s) for n, cls in TASKS.items() for s in cls.split_files}


@cache
def examples_of(name: str, split: str) -> list[Example]:
    task = get_task(name)
    path = Path(DATA_DIR) / task.folder / task.split_files[split]
    if not path.is_file():
        pytest.skip(f"{path} is not in RPT_DATA_DIR")
    return load_split(task, DATA_DIR, split)


@pytest.mark.parametrize(("name", "split"), sorted(OFFICIAL_SIZES))
def test_official_size(name, split):
    assert len(examples_of(name, split)) == OFFICIAL_SIZES[(name, split)]


@pytest.mark.parametrize(("name", "split"), sorted(OFFICIAL_SIZES))
def test_examples_are_well_formed(name, split):
    examples = examples_of(name, split)
    if split == "test" and name not in LABELED_TEST:
        assert all(ex.label is None and ex.target is None for ex in examples)
        return
    for ex in examples:
        assert ex.label is not None and 0 <= ex.label < len(ex.choices), ex
        if name == "record":
            assert ex.target in ex.answers and ex.choices[ex.label] in ex.answers, ex
        else:
            assert ex.target == ex.choices[ex.label], ex


@pytest.mark.parametrize(
    ("name", "split"),
    [k for k in sorted(OFFICIAL_SIZES) if k[1] != "test"] + [("axb", "test"), ("axg", "test")],
)
def test_gold_predictions_score_one(name, split):
    task = get_task(name)
    examples = examples_of(name, split)
    assert task.compute_metrics(examples, [ex.target for ex in examples])["score"] == pytest.approx(
        1.0
    )


def test_axg_pairs_and_constant_prediction():
    examples = examples_of("axg", "test")
    # 178 pairs, half entailment: a constant answer is right half the time and always agrees
    assert len({ex.group for ex in examples}) == 178
    values = get_task("axg").compute_metrics(examples, ["entailment"] * len(examples))
    assert values == pytest.approx({"accuracy": 0.5, "gender_parity": 1.0, "score": 0.5})


def test_axb_constant_prediction_has_zero_mcc():
    examples = examples_of("axb", "test")
    assert get_task("axb").compute_metrics(examples, ["entailment"] * len(examples))["mcc"] == 0.0


def test_multirc_groups_are_questions():
    # 4848 val answers belong to 953 questions (README: 83 passages / 953 questions)
    assert len({ex.group for ex in examples_of("multirc", "val")}) == 953
    assert len({ex.group for ex in examples_of("multirc", "train")}) == 5131


def test_wsc_marks_every_pronoun():
    for split in ("train", "val", "test"):
        for ex in examples_of("wsc", split):
            assert ex.source.count("*") >= 2, ex.source
