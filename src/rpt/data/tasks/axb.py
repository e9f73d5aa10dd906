"""AX-b, the broad-coverage diagnostic: RTE-style entailment, scored by Matthews correlation.

It has no training data: it is evaluated with a prompt trained on RTE, so its template and
label words must be RTE's (its sentence1/sentence2 are RTE's premise/hypothesis).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rpt.data.tasks.rte import RTE


class AxB(RTE):
    name = "axb"
    folder = "AX-b"
    hub_config = "axb"
    split_files = {"test": "AX-b.jsonl"}  # labeled, all of it
    trained_on = "rte"  # the benchmark evaluates the RTE model on the diagnostics
    metric_names = ("mcc",)
    record_fields = {"sentence1": str, "sentence2": str}
    default_template = "premise: {sentence1} hypothesis: {sentence2}"
    idx_type = str  # "0", "1", … in the official file

    def meta_of(self, record: Mapping, where: str) -> dict[str, Any]:
        # The phenomenon annotated ("Negation", ...); absent or empty for most rows.
        logic = record.get("logic")
        return {"logic": logic} if isinstance(logic, str) and logic else {}

    def hub_row_to_record(self, row: dict) -> dict:
        row = super().hub_row_to_record(row)
        if isinstance(row.get("idx"), int):
            row["idx"] = str(row["idx"])  # the hub stores the official string idx as an int
        return row
