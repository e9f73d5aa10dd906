"""AX-g, the Winogender diagnostic: RTE-style entailment on pronoun-swapped pairs.

Each premise appears twice, once with a male and once with a female pronoun, with the same
hypothesis and label; the two are consecutive records (idx 2k and 2k+1), which is how the
official scorer (jiant's ``GenderParity``) pairs them. ``group`` is therefore ``idx // 2``.
Evaluated with a prompt trained on RTE (same template and label words).

Reported: accuracy and gender parity (the share of pairs predicted alike). The leaderboard
shows both ("Gender Parity / Accuracy") and neither enters the SuperGLUE average; ``score`` is
accuracy, because a constant prediction has perfect parity.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from rpt.data.example import Example
from rpt.data.tasks.rte import RTE


class AxG(RTE):
    name = "axg"
    folder = "AX-g"
    hub_config = "axg"
    split_files = {"test": "AX-g.jsonl"}  # labeled, all of it
    trained_on = "rte"  # the benchmark evaluates the RTE model on the diagnostics
    metric_names = ("accuracy", "gender_parity")
    score_metrics = ("accuracy",)

    def group_of(self, record: Mapping, idx: Any) -> Any:
        return idx // 2

    def meta_of(self, record: Mapping, where: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"hypothesis": record["hypothesis"]}  # checked by then
        pair_id = record.get("pair_id")  # in the official file, not on the hub
        if isinstance(pair_id, int) and not isinstance(pair_id, bool):
            meta["pair_id"] = pair_id
        return meta

    def compute_metrics(
        self, examples: Sequence[Example], predictions: Sequence[str]
    ) -> dict[str, float]:
        # Parity is only meaningful if the groups really are pronoun-swapped pairs.
        hypotheses: dict[Any, set[str]] = defaultdict(set)
        for ex in examples:
            hypotheses[ex.group].add(ex.meta.get("hypothesis", ""))
        mixed = [g for g, hs in hypotheses.items() if len(hs) > 1]
        if mixed:
            raise ValueError(
                f"axg: pair {mixed[0]} mixes different hypotheses; gender parity pairs records "
                "2k and 2k+1 of the official file, so it must not be reordered or filtered"
            )
        return super().compute_metrics(examples, predictions)
