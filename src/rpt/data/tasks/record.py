"""ReCoRD: which passage entity fills the query's ``@placeholder``?

One record is a passage with its entity spans and several queries; each QUERY is one Example
whose ``choices`` are the passage's entity strings (deduplicated, in passage order) and whose
``answers`` are the gold strings. Scored with the official max-over-gold token F1 and EM.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from rpt import metrics
from rpt.data.example import Example
from rpt.data.readers import field_error
from rpt.data.tasks.base import Task, check_type, get_field, match_choice

#: Between entities in the source; entity names may contain commas ("Washington, D.C.").
ENTITY_SEPARATOR = "; "


class ReCoRD(Task):
    name = "record"
    folder = "ReCoRD"
    hub_config = "record"
    num_classes = None  # per-example choices
    metric_names = ("f1", "em")  # score = their mean
    record_fields = {"passage": str, "query": str}
    derived_fields = ("entities",)  # the choices joined by ENTITY_SEPARATOR
    # Query and entities first (the original code puts the passage first): passages are long,
    # and a right-truncated input must not lose the question it is about.
    default_template = "query: {query} entities: {entities} passage: {passage}"
    default_label_words = None
    nested_idx_field = "qas[].idx"

    def _check_label_words(self, words: Sequence[str] | None) -> tuple[str, ...] | None:
        if words is not None:
            raise ValueError(
                "record: label_words must be null: each query's choices are its passage's entities"
            )
        return None

    @staticmethod
    def _entities(passage: Mapping, text: str, where: str) -> tuple[str, ...]:
        spans = get_field(passage, "entities", list, where, "passage.entities")
        entities: dict[str, None] = {}  # an ordered set
        for i, span in enumerate(spans):
            f = f"passage.entities[{i}]"
            check_type(span, dict, where, f)
            start = get_field(span, "start", int, where, f"{f}.start")
            end = get_field(span, "end", int, where, f"{f}.end")  # inclusive, as in ReCoRD
            if not 0 <= start <= end < len(text):
                raise field_error(
                    where,
                    f,
                    f"span {start}..{end} lies outside the passage text ({len(text)} characters)",
                )
            entities[text[start : end + 1]] = None
        if not entities:
            raise field_error(
                where, "passage.entities", "empty; ReCoRD's choices are the passage's entities"
            )
        return tuple(entities)

    def examples_from(self, record: Mapping, where: str, labeled: bool | None) -> list[Example]:
        p_idx = get_field(record, "idx", int, where)
        passage = get_field(record, "passage", dict, where)
        text = get_field(passage, "text", str, where, "passage.text")
        entities = self._entities(passage, text, where)  # offsets index the raw text
        # "@highlight" introduces the article's summary bullets; written as "- " as in GPT-3.
        passage_text = text.replace("@highlight\n", "- ")
        qas = get_field(record, "qas", list, where)
        examples = []
        for qi, qa in enumerate(qas):
            qf = f"qas[{qi}]"
            check_type(qa, dict, where, qf)
            q_idx = get_field(qa, "idx", int, where, f"{qf}.idx")
            query = get_field(qa, "query", str, where, f"{qf}.query")
            answers = self._answers(qa, where, qf, labeled)
            label = target = None
            if answers:
                in_choices = [entities.index(a) for a in answers if a in entities]
                if not in_choices:
                    raise field_error(
                        where,
                        f"{qf}.answers",
                        f"no gold answer ({'; '.join(answers)}) is among the passage's entities",
                    )
                label, target = in_choices[0], answers[0]
            values = {
                "passage": passage_text,
                "query": query,
                "entities": ENTITY_SEPARATOR.join(entities),
            }
            examples.append(
                Example(
                    idx=q_idx,
                    source=self.render(values, where),
                    choices=entities,
                    label=label,
                    target=target,
                    answers=answers,
                    meta={"passage_idx": p_idx},
                )
            )
        return examples

    @staticmethod
    def _answers(qa: Mapping, where: str, qf: str, labeled: bool | None) -> tuple[str, ...]:
        """The gold texts, deduplicated in order; () for an unlabeled (test) query."""
        answers: dict[str, None] = {}
        if labeled is not False and "answers" in qa:
            for ai, a in enumerate(get_field(qa, "answers", list, where, f"{qf}.answers")):
                check_type(a, dict, where, f"{qf}.answers[{ai}]")
                answers[get_field(a, "text", str, where, f"{qf}.answers[{ai}].text")] = None
        if labeled and not answers:
            raise field_error(
                where, f"{qf}.answers", "missing or empty (train and val records must be labeled)"
            )
        return tuple(answers)

    def records_from_hub(self, rows: Iterable[Mapping]) -> Iterator[tuple[int, dict]]:
        """HF has one row per query; regroup consecutive rows into passage records."""
        record: dict | None = None
        first_row = 0
        for i, row in enumerate(rows, start=1):
            idx = row.get("idx") or {}
            if record is None or record["idx"] != idx.get("passage"):
                if record is not None:
                    yield first_row, record
                text = row.get("passage")
                record = {
                    "idx": idx.get("passage"),
                    "passage": {"text": text, "entities": _hub_entity_spans(row, text)},
                    "qas": [],
                }
                first_row = i
            record["qas"].append(
                {
                    "idx": idx.get("query"),
                    "query": row.get("query"),
                    "answers": [{"text": a} for a in row.get("answers") or []],
                }
            )
        if record is not None:
            yield first_row, record

    def compute_metrics(
        self, examples: Sequence[Example], predictions: Sequence[str]
    ) -> dict[str, float]:
        """Official ReCoRD F1/EM of the predicted texts (any text, not only an entity)."""
        self._scoring_inputs(examples, predictions)
        if any(not ex.answers for ex in examples):
            raise ValueError(
                "record: some queries have no gold answers (a test split?); cannot score"
            )
        answers = [ex.answers for ex in examples]
        values = {
            "f1": metrics.record_f1(predictions, answers),
            "em": metrics.record_em(predictions, answers),
        }
        return self._with_score(values)

    def submission_records(
        self, examples: Sequence[Example], predictions: Sequence[str]
    ) -> list[dict]:
        """``{"idx": query idx, "label": entity text}``; a prediction naming an entity (any
        case) is written as the entity, any other text as generated (ReCoRD scores strings)."""
        self._scoring_inputs(examples, predictions)
        records = []
        for ex, p in zip(examples, predictions):
            i = match_choice(p, ex.choices)
            records.append({"idx": ex.idx, "label": ex.choices[i] if i >= 0 else p.strip()})
        return records


def _hub_entity_spans(row: Mapping, text: Any) -> list[dict[str, Any]]:
    """HF's ``entity_spans`` (a dict of lists, or a list of dicts) → official entity spans."""
    spans = row.get("entity_spans")
    if isinstance(spans, Mapping):
        return [
            {"start": s, "end": e} for s, e in zip(spans.get("start", []), spans.get("end", []))
        ]
    if isinstance(spans, list):
        return [{"start": s.get("start"), "end": s.get("end")} for s in spans]
    # Older hub versions have only the entity strings: locate each one's first occurrence.
    located = []
    for entity in row.get("entities") or []:
        start = text.find(entity) if isinstance(text, str) else -1
        if start >= 0:
            located.append({"start": start, "end": start + len(entity) - 1})
    return located
