"""Readers: every broken file gives a DataError naming the file, the line and the field.

Broken files are written into tmp_path by each test, so the broken bytes sit next to the
assertion about them.
"""

from __future__ import annotations

import json
import string
import sys
import tempfile
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpt.data import get_task
from rpt.data.readers import DataError, load_hub_split, load_split, read_jsonl

FIXTURES = Path(__file__).parents[1] / "fixtures" / "superglue"

CB_OK = {"premise": "It rained.", "hypothesis": "it rained", "label": "entailment", "idx": 0}


def write_lines(root: Path, rel: str, lines: list[str | dict], newline_at_end: bool = True) -> Path:
    """Write ``lines`` (dicts are JSON-encoded) as ``root/rel`` and return the file's path."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(json.dumps(x) if isinstance(x, dict) else x for x in lines)
    path.write_text(text + ("\n" if newline_at_end else ""), encoding="utf-8")
    return path


def cb(**changes) -> dict:
    record = {**CB_OK, **changes}
    return {k: v for k, v in record.items() if v is not ...}  # `...` deletes a field


# ---- read_jsonl ------------------------------------------------------------------------------


def test_read_jsonl_tolerates_missing_final_newline_blank_lines_crlf_and_bom(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\n{"a": 2}')
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (3, {"a": 2})]


def test_malformed_json_names_file_line_and_column(tmp_path):
    path = write_lines(tmp_path, "CB/train.jsonl", [cb(), '{"premise": "x", "hypothesis" "y"}'])
    with pytest.raises(DataError) as err:
        list(read_jsonl(path))
    assert f"{path}:2: malformed JSON at column 31: Expecting ':' delimiter" in str(err.value)


def test_truncated_last_line_is_reported_as_truncated(tmp_path):
    path = write_lines(
        tmp_path, "CB/val.jsonl", [cb(), '{"premise": "It rai'], newline_at_end=False
    )
    with pytest.raises(DataError, match=r"val\.jsonl:2: malformed JSON .*the file looks truncated"):
        list(read_jsonl(path))


def test_non_object_line(tmp_path):
    path = write_lines(tmp_path, "x.jsonl", [cb(), "[1, 2]"])
    with pytest.raises(DataError, match=r"x\.jsonl:2: expected a JSON object per line, got a list"):
        list(read_jsonl(path))


def test_non_utf8_bytes_name_the_line_and_byte(tmp_path):
    path = tmp_path / "CB" / "train.jsonl"
    path.parent.mkdir()
    path.write_bytes(json.dumps(cb()).encode() + b'\n{"premise": "caf\xe9"}\n')
    with pytest.raises(DataError) as err:
        list(read_jsonl(path))
    assert f"{path}:2: not UTF-8 text (byte 0xe9 at column 17)" in str(err.value)


def test_nan_and_deep_nesting_are_data_errors(tmp_path):
    path = write_lines(tmp_path, "x.jsonl", ['{"a": NaN}'])
    with pytest.raises(
        DataError, match=r"x\.jsonl:1: malformed JSON: non-standard JSON constant NaN"
    ):
        list(read_jsonl(path))
    path = write_lines(tmp_path, "y.jsonl", ["[" * 100_000 + "]" * 100_000])
    with pytest.raises(DataError, match=r"y\.jsonl:1: malformed JSON"):
        list(read_jsonl(path))


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file_has_no_records(tmp_path, content):
    path = tmp_path / "CB" / "train.jsonl"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"{path}: has no records"):
        list(read_jsonl(path))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        list(read_jsonl(tmp_path / "nope.jsonl"))


# ---- load_split: folders and splits ----------------------------------------------------------


def test_missing_data_dir_names_data_dir_and_env_var(tmp_path):
    with pytest.raises(DataError) as err:
        load_split(get_task("cb"), tmp_path / "nowhere", "train")
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message
    assert "data.dir" in message and "RPT_DATA_DIR" in message


def test_missing_task_folder_says_which(tmp_path):
    write_lines(tmp_path, "RTE/train.jsonl", [cb()])
    with pytest.raises(DataError) as err:
        load_split(get_task("cb"), tmp_path, "train")
    message = str(err.value)
    assert "the CB folder is missing" in message and "(found: RTE)" in message
    assert "data.dir" in message and "RPT_DATA_DIR" in message


def test_missing_split_lists_the_splits_that_exist(tmp_path):
    write_lines(
        tmp_path, "BoolQ/val.jsonl", ['{"question": "q", "passage": "p", "idx": 0, "label": true}']
    )
    write_lines(tmp_path, "BoolQ/test.jsonl", ['{"question": "q", "passage": "p", "idx": 0}'])
    with pytest.raises(DataError) as err:
        load_split(get_task("boolq"), tmp_path, "train")
    message = str(err.value)
    assert f"BoolQ has no train.jsonl in {tmp_path / 'BoolQ'} (found: val, test)" in message
    assert "data.carve={from:val}" in message and "data.dir" in message


def test_unknown_split_name(tmp_path):
    with pytest.raises(DataError, match="AX-b has no split 'train'; its splits are: test"):
        load_split(get_task("axb"), tmp_path, "train")


# ---- load_split: records ---------------------------------------------------------------------


def load_cb(tmp_path: Path, lines: list, split: str = "train"):
    path = write_lines(tmp_path, f"CB/{split}.jsonl", lines)
    return path, (lambda: load_split(get_task("cb"), tmp_path, split))


def test_missing_field(tmp_path):
    path, load = load_cb(tmp_path, [cb(), cb(idx=1, hypothesis=...)])
    with pytest.raises(DataError) as err:
        load()
    assert str(err.value) == f"{path}:2: field 'hypothesis': missing"


def test_unknown_label_lists_the_valid_ones(tmp_path):
    path, load = load_cb(tmp_path, [cb(label="maybe")])
    with pytest.raises(DataError) as err:
        load()
    assert str(err.value) == (
        f"{path}:1: field 'label': unknown label 'maybe' "
        "(expected one of: entailment, contradiction, neutral)"
    )


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"idx": "3"}, "idx", "expected an integer, got a string '3'"),
        ({"idx": True}, "idx", "expected an integer, got a boolean True"),
        ({"premise": None}, "premise", "expected a string, got null None"),
        ({"label": 0}, "label", "expected a string, got an integer 0"),
    ],
)
def test_wrong_type_names_the_field(tmp_path, change, field, problem):
    path, load = load_cb(tmp_path, [cb(**change)])
    with pytest.raises(DataError) as err:
        load()
    assert str(err.value) == f"{path}:1: field '{field}': {problem}"


def test_bool_labels_must_be_booleans(tmp_path):
    path = write_lines(
        tmp_path, "BoolQ/val.jsonl", ['{"question": "q", "passage": "p", "idx": 0, "label": 1}']
    )
    with pytest.raises(
        DataError, match=rf"{path}:1: field 'label': expected a boolean, got an integer 1"
    ):
        load_split(get_task("boolq"), tmp_path, "val")


def test_duplicate_idx_names_both_lines(tmp_path):
    path, load = load_cb(tmp_path, [cb(idx=4), cb(idx=5), cb(idx=4)])
    with pytest.raises(DataError) as err:
        load()
    assert str(err.value) == f"{path}:3: field 'idx': duplicate idx 4 (first at line 1)"


def test_train_and_val_must_be_labeled_but_test_need_not(tmp_path):
    path, load = load_cb(tmp_path, [cb(label=...)], split="val")
    with pytest.raises(DataError, match=rf"{path}:1: field 'label': missing \(train and val"):
        load()
    _, load_test = load_cb(tmp_path, [cb(label=...)], split="test")
    assert load_test()[0].label is None


def test_nested_multirc_errors_name_the_nested_field(tmp_path):
    record = json.loads((FIXTURES / "MultiRC" / "train.jsonl").read_text().splitlines()[0])
    record["passage"]["questions"][1]["answers"][2]["label"] = "yes"
    path = write_lines(tmp_path, "MultiRC/train.jsonl", [record])
    with pytest.raises(DataError) as err:
        load_split(get_task("multirc"), tmp_path, "train")
    assert str(err.value) == (
        f"{path}:1: field 'passage.questions[1].answers[2].label': expected an integer, got a string 'yes'"
    )


def test_duplicate_nested_idx(tmp_path):
    lines = (FIXTURES / "MultiRC" / "train.jsonl").read_text().splitlines()
    second = json.loads(lines[1])
    second["passage"]["questions"][0]["answers"][0]["idx"] = 0  # answer 0 is in paragraph 0 too
    second["passage"]["questions"][0]["idx"] = 0
    second["idx"] = 0
    path = write_lines(tmp_path, "MultiRC/train.jsonl", [lines[0], second])
    with pytest.raises(
        DataError, match=rf"{path}:2: field 'idx': duplicate idx 0 \(first at line 1\)"
    ):
        load_split(get_task("multirc"), tmp_path, "train")


def test_wsc_span_index_outside_text(tmp_path):
    record = {
        "text": "He left.",
        "target": {"span1_text": "Tom", "span1_index": 0, "span2_text": "He", "span2_index": 9},
        "idx": 0,
    }
    path = write_lines(tmp_path, "WSC/test.jsonl", [record])
    with pytest.raises(DataError) as err:
        load_split(get_task("wsc"), tmp_path, "test")
    assert (
        str(err.value)
        == f"{path}:1: field 'target.span2_index': word index 9 is outside the text (2 words)"
    )


def test_record_entity_span_outside_passage(tmp_path):
    record = json.loads((FIXTURES / "ReCoRD" / "train.jsonl").read_text().splitlines()[0])
    record["passage"]["entities"][1] = {"start": 5, "end": 5000}
    path = write_lines(tmp_path, "ReCoRD/train.jsonl", [record])
    with pytest.raises(
        DataError, match=rf"{path}:1: field 'passage.entities\[1\]': span 5..5000 lies outside"
    ):
        load_split(get_task("record"), tmp_path, "train")


def test_record_gold_not_among_entities(tmp_path):
    record = json.loads((FIXTURES / "ReCoRD" / "train.jsonl").read_text().splitlines()[0])
    record["qas"][0]["answers"] = [{"start": 0, "end": 4, "text": "Marta"}]
    path = write_lines(tmp_path, "ReCoRD/train.jsonl", [record])
    with pytest.raises(
        DataError, match=rf"{path}:1: field 'qas\[0\].answers': no gold answer \(Marta\)"
    ):
        load_split(get_task("record"), tmp_path, "train")


# ---- property: anything thrown at the readers parses or raises DataError ---------------------

TASK_FILES = [
    (name, rel)
    for name, rel in [
        ("cb", "CB/train.jsonl"),
        ("boolq", "BoolQ/train.jsonl"),
        ("copa", "COPA/train.jsonl"),
        ("wic", "WiC/train.jsonl"),
        ("wsc", "WSC/train.jsonl"),
        ("multirc", "MultiRC/train.jsonl"),
        ("record", "ReCoRD/train.jsonl"),
        ("axb", "AX-b/AX-b.jsonl"),
        ("axg", "AX-g/AX-g.jsonl"),
    ]
]
SPLIT_OF = {"AX-b.jsonl": "test", "AX-g.jsonl": "test"}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value, prefix=()):
    """Every (container, key) path inside a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated_file(draw):
    """A fixture file with a few records changed: values replaced, keys dropped, bytes broken."""
    name, rel = draw(st.sampled_from(TASK_FILES))
    records = [
        json.loads(line) for line in (FIXTURES / rel).read_text().splitlines() if line.strip()
    ]
    for _ in range(draw(st.integers(0, 3))):
        record = draw(st.sampled_from(records))
        paths = list(_paths(record))
        path = draw(st.sampled_from(paths))
        parent = record
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    data = "\n".join(json.dumps(r) for r in records).encode()
    if draw(st.booleans()):  # byte-level damage: cut, insert or overwrite
        at = draw(st.integers(0, len(data)))
        junk = draw(
            st.binary(max_size=4)
            | st.sampled_from([b"{", b"}", b'"', b"\n", b"\xff", b",", b"\x00"])
        )
        data = data[:at] + junk + data[at + draw(st.integers(0, 3)) :]
    return name, rel, data


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_file())
def test_mutated_files_parse_or_raise_data_error(case):
    name, rel, data = case
    task = get_task(name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / rel
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        try:
            examples = load_split(task, tmp, SPLIT_OF.get(path.name, "train"))
        except DataError as e:
            assert str(path) in str(e) or "has no" in str(e)
        else:
            for ex in examples:  # whatever parsed is well-formed
                assert isinstance(ex.source, str) and ex.choices
                assert ex.label is None or 0 <= ex.label < len(ex.choices)


@settings(max_examples=100, deadline=2000)
@given(
    st.lists(
        st.binary(max_size=30) | st.text(string.printable, max_size=30).map(str.encode), max_size=5
    )
)
def test_random_bytes_never_raise_anything_but_data_error(chunks):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.jsonl"
        path.write_bytes(b"\n".join(chunks))
        try:
            for _, record in read_jsonl(path):
                assert isinstance(record, dict)
        except DataError:
            pass


# ---- load_hub_split, with a stand-in for datasets.load_dataset -------------------------------


@pytest.fixture
def fake_hub(monkeypatch):
    """Install a fake ``datasets`` module serving ``rows[(config, split)]``; return the calls."""
    rows: dict[tuple[str, str], list[dict]] = {}
    calls: list[tuple] = []

    def load_dataset(path, name, split, **kwargs):
        calls.append((path, name, split))
        return rows[(name, split)]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return rows, calls


def test_hub_cb_maps_split_names_and_int_labels(fake_hub):
    rows, calls = fake_hub
    rows[("cb", "validation")] = [
        {"premise": "p0", "hypothesis": "h0", "idx": 0, "label": 2},
        {"premise": "p1", "hypothesis": "h1", "idx": 1, "label": 1},
    ]
    rows[("cb", "test")] = [{"premise": "p", "hypothesis": "h", "idx": 0, "label": -1}]
    val = load_hub_split(get_task("cb"), "val")
    assert calls == [("super_glue", "cb", "validation")]
    assert [ex.target for ex in val] == ["neutral", "contradiction"]
    assert load_hub_split(get_task("cb"), "test")[0].label is None


def test_hub_bad_label_is_a_data_error_naming_the_row(fake_hub):
    rows, _ = fake_hub
    rows[("cb", "train")] = [{"premise": "p", "hypothesis": "h", "idx": 0, "label": 7}]
    with pytest.raises(
        DataError,
        match=r"super_glue/cb/train:1: field 'label': expected a string, got an integer 7",
    ):
        load_hub_split(get_task("cb"), "train")


def test_hub_multirc_rows_are_regrouped_into_paragraphs(fake_hub):
    rows, _ = fake_hub
    rows[("multirc", "validation")] = [
        {
            "paragraph": "P0",
            "question": "Q0",
            "answer": "A0",
            "idx": {"paragraph": 0, "question": 0, "answer": 0},
            "label": 1,
        },
        {
            "paragraph": "P0",
            "question": "Q0",
            "answer": "A1",
            "idx": {"paragraph": 0, "question": 0, "answer": 1},
            "label": 0,
        },
        {
            "paragraph": "P0",
            "question": "Q1",
            "answer": "A2",
            "idx": {"paragraph": 0, "question": 1, "answer": 2},
            "label": 1,
        },
        {
            "paragraph": "P1",
            "question": "Q2",
            "answer": "A3",
            "idx": {"paragraph": 1, "question": 2, "answer": 3},
            "label": 0,
        },
    ]
    examples = load_hub_split(get_task("multirc"), "val")
    assert [ex.group for ex in examples] == [(0, 0), (0, 0), (0, 1), (1, 2)]
    assert [ex.target for ex in examples] == ["true", "false", "true", "false"]
    assert examples[2].source == "question: Q1 answer: A2 paragraph: P0"


def test_hub_record_rows_are_regrouped_with_entity_spans(fake_hub):
    rows, _ = fake_hub
    text = "Ana met Bo in Oslo.\n@highlight\nAna in Oslo"
    spans = {
        "text": ["Ana", "Bo", "Oslo", "Ana", "Oslo"],
        "start": [0, 8, 14, 31, 38],
        "end": [2, 9, 17, 33, 41],
    }
    rows[("record", "train")] = [
        {
            "passage": text,
            "query": "@placeholder met Bo.",
            "entities": ["Ana", "Bo", "Oslo"],
            "entity_spans": spans,
            "answers": ["Ana"],
            "idx": {"passage": 0, "query": 0},
        },
        {
            "passage": text,
            "query": "They met in @placeholder.",
            "entities": ["Ana", "Bo", "Oslo"],
            "entity_spans": spans,
            "answers": ["Oslo"],
            "idx": {"passage": 0, "query": 1},
        },
    ]
    examples = load_hub_split(get_task("record"), "train")
    assert [ex.choices for ex in examples] == [("Ana", "Bo", "Oslo")] * 2
    assert [(ex.idx, ex.label, ex.answers) for ex in examples] == [
        (0, 0, ("Ana",)),
        (1, 2, ("Oslo",)),
    ]
    assert "- Ana in Oslo" in examples[0].source


def test_hub_wsc_and_axb_rows_become_official_records(fake_hub):
    rows, _ = fake_hub
    rows[("wsc", "train")] = [
        {
            "text": "Ann thanked Bea because she helped.",
            "span1_index": 2,
            "span2_index": 4,
            "span1_text": "Bea",
            "span2_text": "she",
            "idx": 0,
            "label": 1,
        },
    ]
    rows[("axb", "test")] = [{"sentence1": "s1", "sentence2": "s2", "idx": 0, "label": 0}]
    (wsc,) = load_hub_split(get_task("wsc"), "train")
    assert wsc.target == "true" and "*she*" in wsc.source and wsc.meta["referent"] == "Bea"
    (axb,) = load_hub_split(get_task("axb"), "test")
    assert axb.idx == "0" and axb.target == "entailment"
