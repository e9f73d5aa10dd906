"""What every SuperGLUE task shares; a task file states only what differs.

A task turns one official JSONL record into :class:`~rpt.data.example.Example` objects (its
template applied, its label words as ``choices``), scores predicted texts with the official
metrics, and writes leaderboard lines. Subclasses set class attributes (folder, fields, label
set, metrics) and override a hook only where the record's shape differs (COPA, MultiRC,
ReCoRD, WSC).

Templates are Python format strings over the record's field names, e.g.
``"premise: {premise} hypothesis: {hypothesis}"``; a task may add derived fields (WSC's
``marked_text``, ReCoRD's ``entities``). A template naming any other field is rejected when
the task is built, with the list of fields it may use.
"""

from __future__ import annotations

import string
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from rpt import metrics
from rpt.data.example import Example
from rpt.data.readers import DataError, field_error, json_type_name

__all__ = ["Task", "check_type", "get_field", "match_choice", "normalize"]

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    bool: "a boolean",
    dict: "an object",
    list: "a list",
}


# ---- record access with precise errors -------------------------------------------------------


def check_type(value: Any, expected: type, where: str, field: str) -> Any:
    """Return ``value`` if it has the JSON type ``expected``, else raise a DataError.

    ``bool`` is not accepted where an integer is expected (Python's ``True == 1`` would
    otherwise let a BoolQ-style label pass as a COPA one).
    """
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not ok:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise field_error(
            where,
            field,
            f"expected {_TYPE_NAMES.get(expected, expected.__name__)}, "
            f"got {json_type_name(value)} {shown}",
        )
    return value


def get_field(
    record: Mapping, key: str, expected: type, where: str, field: str | None = None
) -> Any:
    """``record[key]`` checked to be of JSON type ``expected``; ``field`` names it in errors."""
    field = field or key
    if key not in record:
        raise field_error(where, field, "missing")
    return check_type(record[key], expected, where, field)


def normalize(text: str) -> str:
    """How predicted texts are compared with choices: surrounding whitespace and case ignored."""
    return text.strip().lower()


def match_choice(prediction: str, choices: Sequence[str]) -> int:
    """Index of the choice ``prediction`` names (after :func:`normalize`), or -1 for none."""
    wanted = normalize(prediction)
    for i, choice in enumerate(choices):
        if normalize(choice) == wanted:
            return i
    return -1


# ---- the base task ---------------------------------------------------------------------------


class Task:
    """One SuperGLUE task: its files, template, label words, metrics and submission format.

    Args:
        template: a format string over :attr:`template_fields`; None → the task's default.
        label_words: one word per class, in the order of :attr:`labels`; None → the default.
    """

    # -- what a task file states (class attributes) --
    name: ClassVar[str]
    folder: ClassVar[str]
    split_files: ClassVar[Mapping[str, str]] = {
        "train": "train.jsonl",
        "val": "val.jsonl",
        "test": "test.jsonl",
    }
    metric_names: ClassVar[tuple[str, ...]] = ("accuracy",)
    #: The metrics whose mean is the task's SuperGLUE score; None → all of ``metric_names``.
    score_metrics: ClassVar[tuple[str, ...] | None] = None
    num_classes: ClassVar[int | None] = None
    hub_config: ClassVar[str]
    default_template: ClassVar[str]
    default_label_words: ClassVar[tuple[str, ...] | None] = None
    #: Flat fields read from each record, with their JSON type; all may appear in templates.
    record_fields: ClassVar[Mapping[str, type]] = {}
    #: Template fields the task computes from the record (beyond ``record_fields``).
    derived_fields: ClassVar[tuple[str, ...]] = ()
    idx_type: ClassVar[type] = int
    #: The official label values, in label-word order (CB: "entailment", ...).
    labels: ClassVar[tuple[Any, ...]] = ()
    label_type: ClassVar[type] = str
    #: What the leaderboard expects as ``label`` for each class, in the same order.
    submission_labels: ClassVar[tuple[Any, ...]] = ()
    #: Set by tasks with several examples per record: the field holding an example's idx.
    nested_idx_field: ClassVar[str | None] = None
    #: Diagnostics (AX-b, AX-g) have no training data: the task whose prompt they evaluate.
    trained_on: ClassVar[str | None] = None

    def __init__(self, template: str | None = None, label_words: Sequence[str] | None = None):
        self.template = self.default_template if template is None else template
        self._check_template(self.template)
        self.label_words = self._check_label_words(
            self.default_label_words if label_words is None else label_words
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(template={self.template!r}, label_words={self.label_words!r})"
        )

    @property
    def template_fields(self) -> tuple[str, ...]:
        """The field names a template of this task may use."""
        return (*self.record_fields, *self.derived_fields)

    # -- configuration checks --

    def _check_template(self, template: Any) -> None:
        if not isinstance(template, str) or not template.strip():
            raise ValueError(f"{self.name}: template must be a non-empty string, got {template!r}")
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as e:
            raise ValueError(
                f"{self.name}: template {template!r} is not a valid format string ({e}); "
                "write literal braces as {{ and }}"
            ) from None
        for _, field_name, _, _ in parsed:
            if field_name is None:
                continue
            if field_name not in self.template_fields:
                raise ValueError(
                    f"{self.name}: template {template!r} names field {{{field_name}}}, which "
                    f"{self.folder} records lack; available: {', '.join(self.template_fields)}"
                )

    def _check_label_words(self, words: Sequence[str] | None) -> tuple[str, ...] | None:
        if words is None:
            return None
        if isinstance(words, str) or not isinstance(words, Iterable):
            raise ValueError(f"{self.name}: label_words must be a list of strings, got {words!r}")
        words = tuple(words)
        if self.num_classes is not None and len(words) != self.num_classes:
            raise ValueError(
                f"{self.name}: label_words needs {self.num_classes} words, one per label "
                f"({', '.join(map(str, self.labels))}), got {len(words)}: {list(words)}"
            )
        if not all(isinstance(w, str) and w.strip() for w in words):
            raise ValueError(
                f"{self.name}: label_words must be non-empty strings, got {list(words)}"
            )
        if len({normalize(w) for w in words}) != len(words):
            # Predictions are matched case-insensitively, so these would be indistinguishable.
            raise ValueError(
                f"{self.name}: label_words must differ (ignoring case), got {list(words)}"
            )
        return words

    # -- record → examples --

    def template_values(self, record: Mapping, where: str) -> dict[str, Any]:
        """The values a template may use, read (and type-checked) from a flat record."""
        return {
            key: get_field(record, key, kind, where) for key, kind in self.record_fields.items()
        }

    def render(self, values: Mapping[str, Any], where: str) -> str:
        """Apply the template; a format spec that does not suit a value is a DataError."""
        try:
            return self.template.format_map(values)
        except (KeyError, ValueError, TypeError) as e:
            raise DataError(f"{where}: template {self.template!r} cannot be applied: {e}") from None

    def parse_label(
        self,
        record: Mapping,
        where: str,
        labeled: bool | None,
        key: str = "label",
        field: str | None = None,
    ) -> int | None:
        """The index (into :attr:`labels`) of the record's official label, or None if absent.

        ``labeled``: True → the label is required (train/val files); None → optional;
        False → ignored.
        """
        field = field or key
        if labeled is False:
            return None
        if key not in record:
            if labeled:
                raise field_error(where, field, "missing (train and val records must be labeled)")
            return None
        value = check_type(record[key], self.label_type, where, field)
        for i, official in enumerate(self.labels):
            # Compare types too: True == 1 in Python, but not in the official files.
            if type(official) is type(value) and official == value:
                return i
        expected = ", ".join(map(str, self.labels))
        raise field_error(where, field, f"unknown label {value!r} (expected one of: {expected})")

    def group_of(self, record: Mapping, idx: Any) -> Any:
        """The Example's ``group`` (AX-g overrides); None by default."""
        return None

    def meta_of(self, record: Mapping, where: str) -> dict[str, Any]:
        """Extra reference data kept in ``Example.meta``; nothing by default."""
        return {}

    def record_to_examples(
        self, record: dict, where: str, *, labeled: bool | None = None
    ) -> list[Example]:
        """The examples of one official record; ``where`` ("path:line") prefixes every error.

        Raises DataError for a missing field, a field of the wrong JSON type, an unknown label,
        or a template that cannot be applied. ``labeled`` is as in :meth:`parse_label`.
        """
        if not isinstance(record, Mapping):
            raise DataError(f"{where}: expected a JSON object, got {json_type_name(record)}")
        return self.examples_from(record, where, labeled)

    def examples_from(self, record: Mapping, where: str, labeled: bool | None) -> list[Example]:
        """Hook behind :meth:`record_to_examples` (``record`` is known to be an object).

        This default makes one example per record with a fixed label set; COPA, MultiRC and
        ReCoRD override it.
        """
        idx = get_field(record, "idx", self.idx_type, where)
        source = self.render(self.template_values(record, where), where)
        label = self.parse_label(record, where, labeled)
        choices = self.label_words
        return [
            Example(
                idx=idx,
                source=source,
                choices=choices,
                label=label,
                target=None if label is None else choices[label],
                group=self.group_of(record, idx),
                meta=self.meta_of(record, where),
            )
        ]

    # -- the hub --

    def records_from_hub(self, rows: Iterable[Mapping]) -> Iterator[tuple[int, dict]]:
        """``(row number, official record)`` for HF ``super_glue`` rows (1-based numbers)."""
        for i, row in enumerate(rows, start=1):
            yield i, self.hub_row_to_record(dict(row))

    def hub_row_to_record(self, row: dict) -> dict:
        """One HF row → the official record: HF's integer label → the official value."""
        label = row.pop("label", -1)
        if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(self.labels):
            row["label"] = self.labels[label]
        elif label != -1:  # -1 marks HF's unlabeled test rows; anything else is reported
            row["label"] = label
        return row

    # -- scoring --

    def _scoring_inputs(self, examples: Sequence[Example], predictions: Sequence[str]) -> None:
        if len(examples) != len(predictions):
            raise ValueError(
                f"{self.name}: {len(predictions)} predictions for {len(examples)} examples"
            )
        if not examples:
            raise ValueError(f"{self.name}: no examples to score")
        for i, p in enumerate(predictions):
            if not isinstance(p, str):
                raise TypeError(
                    f"{self.name}: prediction {i} must be a text, got {type(p).__name__}"
                )

    def predicted_indices(
        self, examples: Sequence[Example], predictions: Sequence[str]
    ) -> list[int]:
        """Index of the choice each prediction names; -1 where it names none (counted wrong)."""
        self._scoring_inputs(examples, predictions)
        return [match_choice(p, ex.choices) for ex, p in zip(examples, predictions)]

    def compute_metrics(
        self, examples: Sequence[Example], predictions: Sequence[str]
    ) -> dict[str, float]:
        """Every metric in :attr:`metric_names` plus ``score``, from predicted texts.

        A prediction is a choice string or generated text; it is matched to ``choices`` after
        :func:`normalize`, and one that matches none counts as wrong.
        """
        preds = self.predicted_indices(examples, predictions)
        unlabeled = sum(ex.label is None for ex in examples)
        if unlabeled:
            raise ValueError(
                f"{self.name}: {unlabeled} examples are unlabeled (a test split?); cannot score"
            )
        golds = [ex.label for ex in examples]
        values = {name: self._metric(name, preds, golds, examples) for name in self.metric_names}
        return self._with_score(values)

    def _metric(
        self, name: str, preds: list[int], golds: list[int], examples: Sequence[Example]
    ) -> float:
        if name == "accuracy":
            return metrics.accuracy(preds, golds)
        if name == "f1_macro":
            return metrics.f1_macro(preds, golds)
        if name == "mcc":
            return metrics.matthews_corrcoef(preds, golds)
        if name == "f1a":
            return metrics.f1_binary(preds, golds, positive=1)
        if name == "em":
            return metrics.multirc_em(preds, golds, [ex.group for ex in examples])
        if name == "gender_parity":
            return metrics.gender_parity(preds, [ex.group for ex in examples])
        raise NotImplementedError(f"{self.name}: no metric named {name!r}")

    def _with_score(self, values: dict[str, float]) -> dict[str, float]:
        names = self.score_metrics or self.metric_names
        values["score"] = sum(values[n] for n in names) / len(names)
        return values

    # -- submission --

    def _submission_indices(
        self, examples: Sequence[Example], predictions: Sequence[str]
    ) -> list[int]:
        preds = self.predicted_indices(examples, predictions)
        unmatched = sum(p < 0 for p in preds)
        if unmatched:
            # The leaderboard needs a label for every idx; say so rather than drop lines.
            warnings.warn(
                f"{self.name}: {unmatched} of {len(preds)} predictions match no choice; "
                f"submitted as the first choice ({examples[0].choices[0]!r})",
                stacklevel=3,
            )
        return [max(p, 0) for p in preds]

    def submission_records(
        self, examples: Sequence[Example], predictions: Sequence[str]
    ) -> list[dict]:
        """Leaderboard lines ``{"idx": …, "label": …}`` in the official submission format."""
        preds = self._submission_indices(examples, predictions)
        return [
            {"idx": ex.idx, "label": self.submission_labels[p]} for ex, p in zip(examples, preds)
        ]
