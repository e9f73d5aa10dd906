"""COPA: which of two alternatives is the cause (or effect) of the premise?

``choices`` are the two alternatives' text, so rank mode scores the actual continuations and
a decoder is trained to write the right one. Setting ``label_words`` (two words, e.g. the
original code's "false"/"true" for choice1/choice2) makes it a two-class task instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rpt.data.example import Example
from rpt.data.readers import field_error
from rpt.data.tasks.base import Task, get_field

QUESTIONS = ("cause", "effect")


class COPA(Task):
    name = "copa"
    folder = "COPA"
    hub_config = "copa"
    num_classes = None  # per-example choices
    record_fields = {"premise": str, "choice1": str, "choice2": str, "question": str}
    # The original code's order (task_to_keys: choice1, choice2, premise, question).
    default_template = (
        "choice1: {choice1} choice2: {choice2} premise: {premise} question: {question}"
    )
    labels = (0, 1)  # the official label: which choice (0 → choice1)
    label_type = int
    default_label_words = None
    submission_labels = (0, 1)

    def _check_label_words(self, words: Sequence[str] | None) -> tuple[str, ...] | None:
        words = super()._check_label_words(words)
        if words is not None and len(words) != 2:
            raise ValueError(
                f"copa: label_words needs 2 words (for choice1, choice2) or null for the "
                f"alternatives' own text, got {list(words)}"
            )
        return words

    def examples_from(self, record: Mapping, where: str, labeled: bool | None) -> list[Example]:
        idx = get_field(record, "idx", int, where)
        values = self.template_values(record, where)
        if values["question"] not in QUESTIONS:
            raise field_error(
                where,
                "question",
                f"unknown question {values['question']!r} (expected one of: cause, effect)",
            )
        label = self.parse_label(record, where, labeled)
        choices = self.label_words or (values["choice1"], values["choice2"])
        target = None if label is None else choices[label]
        return [
            Example(
                idx=idx,
                source=self.render(values, where),
                choices=choices,
                label=label,
                target=target,
            )
        ]
