"""One model input: the unit every task produces and every backbone consumes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    """A record of a SuperGLUE split after its task's template was applied.

    Attributes:
        idx: the official idx, written back into submission files. MultiRC: the answer's
            ``{"paragraph": p, "question": q, "answer": a}``; ReCoRD: the query's idx.
        source: the model input text, template applied.
        choices: the verbalised candidates rank mode scores: the label words of a
            classification task, the two alternatives of COPA, the passage's entities of ReCoRD.
        label: index of the gold in ``choices``; None when unlabeled (test files).
        target: the text a decoder is trained to produce: ``choices[label]``, except ReCoRD
            where it is the first gold answer; None when unlabeled.
        answers: every gold string (ReCoRD); ``()`` otherwise.
        group: MultiRC: ``(paragraph idx, question idx)`` for per-question exact match;
            AX-g: the key of the male/female pair for gender parity; None otherwise.
        meta: anything else a task keeps for reference (e.g. WSC's referent); never model input.
    """

    idx: Any
    source: str
    choices: tuple[str, ...]
    label: int | None
    target: str | None
    answers: tuple[str, ...] = ()
    group: Any = None
    # A plain dict rather than a read-only proxy: DataLoader workers pickle examples.
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_labeled(self) -> bool:
        """True when the example carries a gold label (train/val files, the diagnostics)."""
        return self.label is not None
