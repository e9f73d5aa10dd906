"""Reading the official SuperGLUE JSONL files (and the HF hub copy) into Examples.

Every problem with the data is a :class:`DataError` whose message names the file, the 1-based
line and the field, so that a user can open the file at the right place::

    /data/CB/train.jsonl:17: field 'label': unknown label 'maybe' (expected one of: ...)

What a record means is the task's business (``Task.record_to_examples``); this module does
the file handling: bytes → UTF-8 → JSON objects, missing folders and splits, duplicate idx.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpt.data.example import Example

if TYPE_CHECKING:  # tasks import DataError from here; only type checkers need Task
    from rpt.data.tasks.base import Task

__all__ = [
    "DataError",
    "HUB_DATASET",
    "load_hub_split",
    "load_split",
    "read_jsonl",
    "split_path",
]

#: The HF dataset ``load_hub_split`` reads; its configs are ``Task.hub_config``.
HUB_DATASET = "super_glue"
#: rpt's split names → the hub's.
HUB_SPLITS = {"train": "train", "val": "validation", "test": "test"}

_LAYOUT = "the official SuperGLUE layout <Task>/{train,val,test}.jsonl"


class DataError(ValueError):
    """A data file (or hub record) is missing or does not have the official format."""


def field_error(where: str, field: str, problem: str) -> DataError:
    """``DataError("<where>: field '<field>': <problem>")``, the one message format used."""
    return DataError(f"{where}: field '{field}': {problem}")


# ---- JSONL -----------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    # json accepts NaN/Infinity by default; they are not JSON and no SuperGLUE file has them.
    raise ValueError(f"non-standard JSON constant {name}")


def _parse_line(raw: bytes, where: str, is_last: bool) -> Any:
    """Decode and parse one line; every failure becomes a DataError naming ``where``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{where}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
            "the official files are UTF-8"
        ) from None
    if not text.strip():
        return None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise DataError(f"{where}: malformed JSON: nested too deeply to parse") from None
    except json.JSONDecodeError as e:
        # The parser running out of input means the record was cut off, not mistyped.
        truncated = e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated string")
        hint = ""
        if truncated:
            hint = " (the record ends early: " + (
                "the file looks truncated)" if is_last else "the line looks truncated)"
            )
        raise DataError(f"{where}: malformed JSON at column {e.colno}: {e.msg}{hint}") from None
    except ValueError as e:  # _reject_constant; huge integers beyond int_max_str_digits
        raise DataError(f"{where}: malformed JSON: {e}") from None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line number, record)`` for each JSON object in a JSONL file.

    Line numbers are 1-based. Blank lines are skipped (they still count). A missing final
    newline is fine (the official files have none). Raises DataError for an unreadable file,
    non-UTF-8 bytes, malformed or truncated JSON, a line that is not a JSON object, and a file
    with no records at all.
    """
    path = Path(path)
    try:
        handle = path.open("rb")  # bytes, so that bad UTF-8 is reported with its line
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    n_records = 0
    with handle:
        line_no = 0
        for line_no, raw in enumerate(handle, start=1):
            is_last = not raw.endswith(b"\n")  # only the final line can lack its newline
            raw = raw.rstrip(b"\r\n")
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte-order mark, written by some editors
            record = _parse_line(raw, f"{path}:{line_no}", is_last)
            if record is None:
                continue
            if not isinstance(record, dict):
                raise DataError(
                    f"{path}:{line_no}: expected a JSON object per line, got {json_type_name(record)}"
                )
            n_records += 1
            yield line_no, record
    if n_records == 0:
        what = "the file is empty" if line_no == 0 else "only blank lines"
        raise DataError(f"{path}: has no records ({what})")


def json_type_name(value: Any) -> str:
    """How a JSON value reads in an error message: "a string", "an integer", "null"…"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


# ---- splits ----------------------------------------------------------------------------------


def split_path(task: Task, data_dir: str | Path, split: str) -> Path:
    """``<data_dir>/<task.folder>/<split file>``, or a DataError saying what is missing."""
    if split not in task.split_files:
        raise DataError(
            f"{task.folder} has no split {split!r}; its splits are: {', '.join(task.split_files)}"
        )
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DataError(
            f"data folder {data_dir} does not exist; set data.dir (or the environment variable "
            f"RPT_DATA_DIR) to a folder in {_LAYOUT}"
        )
    folder = data_dir / task.folder
    if not folder.is_dir():
        present = sorted(p.name for p in data_dir.iterdir() if p.is_dir())
        raise DataError(
            f"the {task.folder} folder is missing from {data_dir} "
            f"(found: {', '.join(present) or 'no task folders'}); point data.dir (or the "
            f"environment variable RPT_DATA_DIR) at a folder in {_LAYOUT}, or use data.source=hub"
        )
    path = folder / task.split_files[split]
    if not path.is_file():
        found = [s for s, name in task.split_files.items() if (folder / name).is_file()]
        hint = "point data.dir at a folder that has it"
        if split in ("train", "val") and found:
            source = "val" if "val" in found else found[0]
            hint = (
                f"set data.carve={{from:{source}}} to carve train and val out of {source}, or "
                + hint
            )
        raise DataError(
            f"{task.folder} has no {task.split_files[split]} in {folder} "
            f"(found: {', '.join(found) or 'no split files'}); {hint}"
        )
    return path


def _hashable(idx: Any) -> Hashable:
    """Dict idx (MultiRC answers) → a sorted tuple, so that duplicates can be looked up."""
    if isinstance(idx, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in idx.items()))
    return idx


def _collect(
    task: Task, records: Iterable[tuple[int, str, dict]], labeled: bool | None, unit: str
) -> list[Example]:
    """Turn ``(ordinal, where, record)`` into examples, rejecting duplicate idx.

    Two checks: the record's own ``idx`` (every task), and for tasks that nest several examples
    in one record (MultiRC, ReCoRD) the example's idx, since submissions are keyed by it.
    """
    examples: list[Example] = []
    record_seen: dict[Hashable, int] = {}
    example_seen: dict[Hashable, int] = {}
    for ordinal, where, record in records:
        new = task.record_to_examples(record, where, labeled=labeled)
        key = _hashable(record["idx"])  # validated by record_to_examples
        if key in record_seen:
            raise field_error(
                where,
                "idx",
                f"duplicate idx {record['idx']!r} (first at {unit} {record_seen[key]})",
            )
        record_seen[key] = ordinal
        if task.nested_idx_field is not None:
            for ex in new:
                key = _hashable(ex.idx)
                if key in example_seen:
                    raise field_error(
                        where,
                        task.nested_idx_field,
                        f"duplicate idx {ex.idx!r} (first at {unit} {example_seen[key]})",
                    )
                example_seen[key] = ordinal
        examples.extend(new)
    return examples


def load_split(task: Task, data_dir: str | Path, split: str) -> list[Example]:
    """Read ``<data_dir>/<task.folder>/<split file>`` into the task's examples.

    Train and val records must be labeled; test records may be (AX-b/AX-g are). Raises
    DataError for a missing folder or split, a malformed file, a record that does not have
    the official fields and types, an unknown label, and duplicate idx.
    """
    path = split_path(task, data_dir, split)
    labeled = True if split in ("train", "val") else None
    records = ((line, f"{path}:{line}", record) for line, record in read_jsonl(path))
    return _collect(task, records, labeled, unit="line")


def load_hub_split(
    task: Task, split: str, *, dataset: str = HUB_DATASET, **load_kwargs: Any
) -> list[Example]:
    """Load ``split`` of ``task`` from the HF hub (``datasets.load_dataset(dataset, config)``).

    The hub's rows are mapped back to the official JSONL records (integer labels → the
    official strings/booleans, MultiRC/ReCoRD rows regrouped into passages) so that
    ``record_to_examples`` is shared with the local reader. ``load_kwargs`` go to
    ``load_dataset`` (``cache_dir``, ``revision``, …).
    """
    if split not in task.split_files:
        raise DataError(
            f"{task.folder} has no split {split!r}; its splits are: {', '.join(task.split_files)}"
        )
    try:
        from datasets import load_dataset  # optional dependency: pip install 'rpt[hub]'
    except ImportError as e:  # pragma: no cover - datasets is installed in dev environments
        raise ImportError(
            "data.source=hub needs the `datasets` package: pip install 'rpt[hub]'"
        ) from e
    hub_split = HUB_SPLITS[split]
    rows = load_dataset(dataset, task.hub_config, split=hub_split, **load_kwargs)
    prefix = f"{dataset}/{task.hub_config}/{hub_split}"
    records = ((row, f"{prefix}:{row}", rec) for row, rec in task.records_from_hub(rows))
    return _collect(task, records, True if split in ("train", "val") else None, unit="row")
