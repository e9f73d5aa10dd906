"""WSC: does the pronoun (span2) refer to the candidate noun phrase (span1)?

The original code (arazd/ResidualPrompts, ``t5_dataset.py``) has two WSC modes: ``wsc`` keeps
only the positive examples, marks the pronoun as ``*he*`` and trains the decoder to generate the
referent, but keeps only the FIRST word of span1 (``text.split(' ')[span1_index]``: "the" for
"the city councilmen"); ``wsc_bool`` lists span texts and indices and predicts false/true.

rpt takes the classification form, so that every record (negatives and the unlabeled test set
too) gets a label and ``choices``/``label`` mean the same for rank mode, a generating decoder
and an encoder's classification head: the source names the whole span1 text (not its first
word) and marks the pronoun in the text as the original ``wsc`` mode does; the label words are
"false"/"true". The whole referent is also kept in ``Example.meta["referent"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rpt.data.readers import field_error
from rpt.data.tasks.base import Task, get_field


def mark_span(text: str, index: int, span_text: str, mark: str, where: str, field: str) -> str:
    """Wrap the span that starts at word ``index`` of ``text`` in ``mark``.

    Word indices count ``text.split(" ")`` as the official files do. Where the word carries
    punctuation ("him,\\"") only the span text itself is wrapped ("*him*,\\"").
    """
    words = text.split(" ")
    if not 0 <= index < len(words):
        raise field_error(
            where, field, f"word index {index} is outside the text ({len(words)} words)"
        )
    n = max(1, len(span_text.split()))
    segment = " ".join(words[index : index + n])
    if span_text and segment.lower().startswith(span_text.lower()):
        cut = len(span_text)
        wrapped = f"{mark}{segment[:cut]}{mark}{segment[cut:]}"
    else:  # the official spans are sometimes off by case or punctuation: mark the words
        wrapped = f"{mark}{segment}{mark}"
    return " ".join([*words[:index], wrapped, *words[index + n :]])


class WSC(Task):
    name = "wsc"
    folder = "WSC"
    hub_config = "wsc"  # not "wsc.fixed": "wsc" is the distributed file rpt reads locally
    num_classes = 2
    # Official records nest the spans under "target"; templates name them flat.
    record_fields = {
        "text": str,
        "span1_text": str,
        "span1_index": int,
        "span2_text": str,
        "span2_index": int,
    }
    derived_fields = ("marked_text",)  # text with the pronoun marked: "... because *they* ..."
    default_template = "span1_text: {span1_text} span2_text: {span2_text} text: {marked_text}"
    labels = (False, True)
    label_type = bool
    default_label_words = ("false", "true")
    submission_labels = ("False", "True")  # as jiant writes WSC.jsonl

    def template_values(self, record: Mapping, where: str) -> dict[str, Any]:
        target = get_field(record, "target", dict, where)
        values = {"text": get_field(record, "text", str, where)}
        for key, kind in self.record_fields.items():
            if key != "text":
                values[key] = get_field(target, key, kind, where, f"target.{key}")
        values["marked_text"] = mark_span(
            values["text"],
            values["span2_index"],
            values["span2_text"],
            "*",
            where,
            "target.span2_index",
        )
        return values

    def meta_of(self, record: Mapping, where: str) -> dict[str, Any]:
        target = record["target"]  # already checked by template_values
        return {"referent": target["span1_text"], "pronoun": target["span2_text"]}

    def hub_row_to_record(self, row: dict) -> dict:
        row = super().hub_row_to_record(row)
        row["target"] = {key: row.pop(key, None) for key in self.record_fields if key != "text"}
        return row
