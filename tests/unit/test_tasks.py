"""Tasks on the hand-written fixtures: templates, choices, metrics and submission formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rpt.data import TASKS, Example, get_task
from rpt.data.readers import load_split
from rpt.data.tasks.base import Task
from rpt.data.tasks.wsc import mark_span

FIXTURES = Path(__file__).parents[1] / "fixtures" / "superglue"
TASK_CONFIGS = Path(__file__).parents[2] / "src" / "rpt" / "conf" / "task"


def fixture_records(rel: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / rel).read_text().splitlines() if line.strip()]


def load(name: str, split: str, **overrides) -> list[Example]:
    return load_split(get_task(name, **overrides), FIXTURES, split)


# ---- registry and configuration --------------------------------------------------------------


def test_get_task_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as err:
        get_task("nope")
    assert str(err.value) == (
        "unknown task 'nope'; valid names: axb, axg, boolq, cb, copa, multirc, record, rte, wic, wsc"
    )


def test_get_task_accepts_folder_names():
    assert get_task("AX-b").name == "axb" and get_task("CB").name == "cb"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_shipped_config_matches_the_task_defaults(name):
    cfg = yaml.safe_load((TASK_CONFIGS / f"{name}.yaml").read_text())
    assert list(cfg) == ["name", "template", "label_words"]
    task = get_task(**cfg)
    default = get_task(name)
    assert task.template == default.template
    assert task.label_words == default.label_words


def test_template_naming_a_missing_field_is_rejected_with_the_available_ones():
    with pytest.raises(ValueError) as err:
        get_task("cb", template="premise: {premise} claim: {claim}")
    assert str(err.value) == (
        "cb: template 'premise: {premise} claim: {claim}' names field {claim}, which CB records "
        "lack; available: premise, hypothesis"
    )


@pytest.mark.parametrize("template", ["{premise", "premise: {}", ""])
def test_malformed_templates_are_rejected(template):
    with pytest.raises(ValueError, match="cb: template"):
        get_task("cb", template=template)


@pytest.mark.parametrize(
    ("name", "words", "message"),
    [
        ("cb", ["yes", "no"], "needs 3 words"),
        ("rte", "entailment", "must be a list of strings"),
        ("rte", ["Yes", "yes"], "must differ"),
        ("copa", ["a", "b", "c"], "needs 2 words"),
        ("record", ["x"], "must be null"),
    ],
)
def test_bad_label_words_are_rejected(name, words, message):
    with pytest.raises(ValueError, match=message):
        get_task(name, label_words=words)


def test_overrides_change_source_and_choices():
    (ex, *_) = load("rte", "train", template="{hypothesis}? {premise}", label_words=["yes", "no"])
    assert ex.source == (
        "The museum in Vell was renovated.? The museum in Vell reopened on Monday after a "
        "two-year renovation."
    )
    assert ex.choices == ("yes", "no") and ex.target == "yes"


# ---- every task's template renders on its fixtures ------------------------------------------


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_template_renders_on_every_fixture_split(name):
    task = get_task(name)
    for split in task.split_files:
        examples = load_split(task, FIXTURES, split)
        assert examples, f"{name}/{split}: no examples"
        for ex in examples:
            head = task.template.split("{")[0]
            assert ex.source.startswith(head) and "{" not in ex.source
            assert ex.choices and all(isinstance(c, str) and c for c in ex.choices)
            if ex.label is not None:
                assert 0 <= ex.label < len(ex.choices)
                if name != "record":
                    assert ex.target == ex.choices[ex.label]


def test_cb_source_is_the_template_over_the_record():
    record = fixture_records("CB/train.jsonl")[0]
    (ex, *_) = load("cb", "train")
    assert ex.source == f"premise: {record['premise']} hypothesis: {record['hypothesis']}"
    assert (ex.idx, ex.label, ex.target) == (0, 1, "contradiction")


def test_boolq_train_fixture():
    examples = load("boolq", "train")
    assert [ex.target for ex in examples] == ["true", "false", "false"]
    assert examples[0].source.startswith("passage: Ostrel Point Lighthouse -- The lighthouse")
    assert examples[0].source.endswith("question: is the harbor lighthouse still in use")
    assert [ex.label for ex in load("boolq", "test")] == [None, None]


def test_wic_source_keeps_the_original_field_order():
    (ex, *_) = load("wic", "train")
    assert ex.source == (
        "start1: 14 end1: 18 sentence1: We sat on the bank of the river. "
        "start2: 4 end2: 8 sentence2: The bank raised its rates. word: bank"
    )


def test_copa_choices_are_the_alternatives_unless_label_words_are_set():
    first = fixture_records("COPA/train.jsonl")[2]
    ex = load("copa", "train")[2]
    assert ex.choices == (first["choice1"], first["choice2"])
    assert ex.target == "I forgot to charge it." and ex.label == 1
    ex = load("copa", "train", label_words=["false", "true"])[2]
    assert ex.choices == ("false", "true") and ex.target == "true"


def test_wsc_marks_the_pronoun_and_names_the_whole_referent():
    ex = load("wsc", "train")[0]
    assert ex.source == (
        "span1_text: The trophy span2_text: it text: The trophy would not fit in the suitcase "
        "because *it* was too big."
    )
    assert ex.meta["referent"] == "The trophy"  # the whole span, not its first word
    assert (ex.choices, ex.target) == (("false", "true"), "true")


def test_mark_span_wraps_only_the_span_text():
    # the official files index words of text.split(" "); punctuation may stick to the word
    assert (
        mark_span('"Give it to him," he said.', 3, "him", "*", "w", "f")
        == '"Give it to *him*," he said.'
    )
    assert mark_span("Then The cat sat.", 1, "the cat", "*", "w", "f") == "Then *The cat* sat."


def test_multirc_one_example_per_answer_grouped_by_question():
    examples = load("multirc", "train")
    assert len(examples) == 8  # 3 + 3 answers in paragraph 0, 2 in paragraph 1
    ex = examples[4]
    assert ex.idx == {"paragraph": 0, "question": 1, "answer": 4}
    assert ex.group == (0, 1)
    assert ex.source == (
        "question: Who was shorter than the vines in August? answer: Ada's brother paragraph: "
        "Sent 1: Ada planted tomatoes in May. Sent 2: By August the vines were taller than her brother Sam."
    )
    assert (ex.choices, ex.target) == (("false", "true"), "true")


def test_record_one_example_per_query_with_entities_as_choices():
    examples = load("record", "train")
    assert [ex.idx for ex in examples] == [0, 1, 2]
    first, _, third = examples
    assert first.choices == ("Marta Vidal", "Corvin Island", "Port Aldane")  # dedup, passage order
    assert first.answers == ("Marta Vidal",)  # two gold spans, one text
    assert (first.label, first.target) == (0, "Marta Vidal")
    assert first.source.startswith(
        "query: Islanders say @placeholder bakes the best rye in the region. "
        "entities: Marta Vidal; Corvin Island; Port Aldane passage: Marta Vidal opened"
    )
    assert (
        "\n- Marta Vidal runs the only bakery" in first.source and "@highlight" not in first.source
    )
    assert third.answers == ("Jonas Brun", "Brun")
    assert third.choices[third.label] == "Jonas Brun" == third.target
    assert first.meta == {"passage_idx": 0}


def test_record_test_split_is_unlabeled():
    examples = load("record", "test")
    assert [(ex.label, ex.target, ex.answers) for ex in examples] == [(None, None, ())] * 2


def test_axb_is_rte_formatted_with_string_idx():
    ex = load("axb", "test")[0]
    assert ex.idx == "0"
    assert (
        ex.source == "premise: The dog chased the ball. hypothesis: The dog did not chase the ball."
    )
    assert ex.choices == get_task("rte").label_words and ex.meta == {"logic": "Negation"}


def test_axg_groups_consecutive_pronoun_pairs():
    examples = load("axg", "test")
    assert [ex.group for ex in examples] == [0, 0, 1, 1]
    assert examples[1].meta["pair_id"] == 7002


# ---- compute_metrics -------------------------------------------------------------------------


def test_cb_metrics_normalise_generated_text_and_count_unmatched_as_wrong():
    examples = load("cb", "val")  # gold: entailment, neutral, entailment
    predictions = [" Entailment\n", "maybe", "contradiction"]
    # accuracy 1/3; F1: entailment TP1 FN1 → 2/3, neutral FN1 → 0, contradiction FP1 → 0
    # macro over {entailment, neutral, contradiction} = (2/3)/3 = 2/9; score = (1/3 + 2/9)/2
    values = get_task("cb").compute_metrics(examples, predictions)
    assert values == pytest.approx(
        {"accuracy": 1 / 3, "f1_macro": 2 / 9, "score": (1 / 3 + 2 / 9) / 2}
    )


def test_multirc_metrics_and_score():
    examples = load("multirc", "val")  # gold: q0 [t, f]; q1 [t, f, t]; q2 [t, t, f]
    predictions = ["true", "false", "true", "true", "true", "true", "false", "false"]
    # per answer: right, right | right, WRONG (FP), right | right, WRONG (FN), right
    # F1a: TP 4, FP 1, FN 1 → 8/10 = 0.8; EM: q0 only → 1/3
    values = get_task("multirc").compute_metrics(examples, predictions)
    assert values == pytest.approx({"f1a": 0.8, "em": 1 / 3, "score": (0.8 + 1 / 3) / 2})


def test_record_metrics_score_any_text():
    examples = load("record", "val")  # golds: (Jonas Brun, Brun), (Marta Vidal), (Port Aldane)
    predictions = ["brun", "Marta", "Corvin Island"]
    # q0: EM with "Brun" → F1 1, EM 1; q1: F1 vs "Marta Vidal" = 2·1·0.5/1.5 = 2/3, EM 0; q2: 0, 0
    values = get_task("record").compute_metrics(examples, predictions)
    f1, em = (1 + 2 / 3) / 3, 1 / 3
    assert values == pytest.approx({"f1": f1, "em": em, "score": (f1 + em) / 2})


def test_axg_score_is_accuracy_with_gender_parity_alongside():
    examples = load("axg", "test")  # gold: entailment ×2, not_entailment ×2
    predictions = ["entailment", "not_entailment", "not_entailment", "not_entailment"]
    # accuracy 3/4; parity: pair 0 differs, pair 1 agrees → 1/2; score = accuracy
    values = get_task("axg").compute_metrics(examples, predictions)
    assert values == pytest.approx({"accuracy": 0.75, "gender_parity": 0.5, "score": 0.75})


def test_axb_score_is_mcc():
    examples = load("axb", "test")  # gold: not, ent, not, not
    values = get_task("axb").compute_metrics(examples, ["not_entailment"] * 4)
    assert values == {"mcc": 0.0, "score": 0.0}  # constant prediction → MCC 0


def test_scoring_rejects_unlabeled_examples_and_length_mismatch():
    task = get_task("cb")
    with pytest.raises(ValueError, match="unlabeled"):
        task.compute_metrics(load("cb", "test"), ["entailment", "neutral"])
    with pytest.raises(ValueError, match="1 predictions for 3 examples"):
        task.compute_metrics(load("cb", "val"), ["entailment"])


@pytest.mark.parametrize("name", sorted(TASKS))
def test_gold_predictions_score_perfectly(name):
    task = get_task(name)
    split = "val" if "val" in task.split_files else "test"
    examples = load_split(task, FIXTURES, split)
    values = task.compute_metrics(examples, [ex.target for ex in examples])
    assert set(values) == {*task.metric_names, "score"}
    assert values["score"] == pytest.approx(1.0)


# ---- submission records ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "split", "prediction", "label"),
    [
        ("boolq", "test", "true", "true"),
        ("cb", "test", "neutral", "neutral"),
        ("copa", "test", None, 1),  # the second alternative's text → 1
        ("rte", "test", "not_entailment", "not_entailment"),
        ("wic", "test", "false", "false"),
        ("wsc", "test", "true", "True"),
        ("axb", "test", "entailment", "entailment"),
        ("axg", "test", "not_entailment", "not_entailment"),
    ],
)
def test_submission_labels_use_the_official_format(name, split, prediction, label):
    task = get_task(name)
    examples = load_split(task, FIXTURES, split)
    if name == "copa":  # predict the second alternative of every question
        predictions = [ex.choices[1] for ex in examples]
    else:
        predictions = [prediction] * len(examples)
    records = task.submission_records(examples, predictions)
    assert [r["idx"] for r in records] == [ex.idx for ex in examples]
    assert {r["label"] for r in records} == {label}


def test_unmatched_predictions_are_submitted_with_a_warning():
    examples = load("cb", "test")
    with pytest.warns(UserWarning, match="1 of 2 predictions match no choice"):
        records = get_task("cb").submission_records(examples, ["neutral", "???"])
    assert [r["label"] for r in records] == ["neutral", "entailment"]


def test_multirc_submission_round_trips_the_nested_layout():
    task = get_task("multirc")
    examples = load_split(task, FIXTURES, "val")
    records = task.submission_records(examples, [ex.target for ex in examples])
    # Same nesting as the official file, with only idx and the predicted 0/1 label kept.
    expected = [
        {
            "idx": r["idx"],
            "passage": {
                "questions": [
                    {
                        "idx": q["idx"],
                        "answers": [{"idx": a["idx"], "label": a["label"]} for a in q["answers"]],
                    }
                    for q in r["passage"]["questions"]
                ]
            },
        }
        for r in fixture_records("MultiRC/val.jsonl")
    ]
    assert records == expected
    json.dumps(records)  # writable as JSONL


def test_record_submission_writes_the_entity_text():
    task = get_task("record")
    examples = load_split(task, FIXTURES, "test")
    records = task.submission_records(examples, ["  marta vidal ", "Somewhere Else"])
    # a prediction naming an entity is written as the entity; other text as generated
    assert records == [{"idx": 0, "label": "Marta Vidal"}, {"idx": 1, "label": "Somewhere Else"}]
    val = load_split(task, FIXTURES, "val")
    round_trip = task.submission_records(val, [ex.target for ex in val])
    assert [(r["idx"], r["label"]) for r in round_trip] == [(ex.idx, ex.answers[0]) for ex in val]


def test_every_registered_task_is_a_task_with_its_attributes():
    for name, cls in TASKS.items():
        assert issubclass(cls, Task) and cls.name == name
        assert cls.split_files and cls.metric_names and cls.folder
