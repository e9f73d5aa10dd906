"""MultiRC: is each candidate answer to a question about a paragraph true?

One record is a paragraph with its questions and their candidate answers; each ANSWER is one
Example (false/true), grouped by ``(paragraph idx, question idx)`` for the per-question exact
match. Submissions go back into the nested per-paragraph layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from rpt.data.example import Example
from rpt.data.tasks.base import Task, check_type, get_field


class MultiRC(Task):
    name = "multirc"
    folder = "MultiRC"
    hub_config = "multirc"
    num_classes = 2
    metric_names = ("f1a", "em")  # score = their mean
    # Not flat in the record (see record_to_examples); these are the names templates may use.
    record_fields = {"question": str, "answer": str, "paragraph": str}
    default_template = "question: {question} answer: {answer} paragraph: {paragraph}"
    labels = (0, 1)  # the official answer labels are integers
    label_type = int
    default_label_words = ("false", "true")
    submission_labels = (0, 1)
    nested_idx_field = "passage.questions[].answers[].idx"

    def examples_from(self, record: Mapping, where: str, labeled: bool | None) -> list[Example]:
        p_idx = get_field(record, "idx", int, where)
        passage = get_field(record, "passage", dict, where)
        paragraph = get_field(passage, "text", str, where, "passage.text")
        questions = get_field(passage, "questions", list, where, "passage.questions")
        examples = []
        for qi, q in enumerate(questions):
            qf = f"passage.questions[{qi}]"
            check_type(q, dict, where, qf)
            q_idx = get_field(q, "idx", int, where, f"{qf}.idx")
            question = get_field(q, "question", str, where, f"{qf}.question")
            answers = get_field(q, "answers", list, where, f"{qf}.answers")
            for ai, a in enumerate(answers):
                af = f"{qf}.answers[{ai}]"
                check_type(a, dict, where, af)
                a_idx = get_field(a, "idx", int, where, f"{af}.idx")
                answer = get_field(a, "text", str, where, f"{af}.text")
                label = self.parse_label(a, where, labeled, field=f"{af}.label")
                values = {"question": question, "answer": answer, "paragraph": paragraph}
                examples.append(
                    Example(
                        idx={"paragraph": p_idx, "question": q_idx, "answer": a_idx},
                        source=self.render(values, where),
                        choices=self.label_words,
                        label=label,
                        target=None if label is None else self.label_words[label],
                        group=(p_idx, q_idx),
                    )
                )
        return examples

    def records_from_hub(self, rows: Iterable[Mapping]) -> Iterator[tuple[int, dict]]:
        """HF has one row per answer; regroup consecutive rows into paragraph records."""
        record: dict | None = None
        first_row = 0
        for i, row in enumerate(rows, start=1):
            idx = row.get("idx") or {}
            p_idx, q_idx = idx.get("paragraph"), idx.get("question")
            if record is None or record["idx"] != p_idx:
                if record is not None:
                    yield first_row, record
                record = {"idx": p_idx, "passage": {"text": row.get("paragraph"), "questions": []}}
                first_row = i
            questions = record["passage"]["questions"]
            if not questions or questions[-1]["idx"] != q_idx:
                questions.append({"idx": q_idx, "question": row.get("question"), "answers": []})
            answer = {"idx": idx.get("answer"), "text": row.get("answer")}
            label = row.get("label", -1)
            if label != -1:  # HF marks unlabeled test answers with -1; its 0/1 are official
                answer["label"] = label
            questions[-1]["answers"].append(answer)
        if record is not None:
            yield first_row, record

    def submission_records(
        self, examples: Sequence[Example], predictions: Sequence[str]
    ) -> list[dict]:
        """One line per paragraph: ``{"idx": p, "passage": {"questions": [{"idx": q,
        "answers": [{"idx": a, "label": 0/1}]}]}}`` (the order of first appearance)."""
        preds = self._submission_indices(examples, predictions)
        paragraphs: dict[int, dict[int, list[dict]]] = {}
        for ex, p in zip(examples, preds):
            questions = paragraphs.setdefault(ex.idx["paragraph"], {})
            answers = questions.setdefault(ex.idx["question"], [])
            answers.append({"idx": ex.idx["answer"], "label": self.submission_labels[p]})
        return [
            {
                "idx": p_idx,
                "passage": {"questions": [{"idx": q, "answers": a} for q, a in questions.items()]},
            }
            for p_idx, questions in paragraphs.items()
        ]
