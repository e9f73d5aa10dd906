"""The official SuperGLUE metrics against values worked out by hand (arithmetic in comments)."""

import math

import pytest

from rpt import metrics


def test_accuracy():
    # 3 of 4 equal → 0.75
    assert metrics.accuracy([0, 1, 1, 0], [0, 1, 0, 0]) == pytest.approx(0.75)


def test_accuracy_counts_unmatched_as_wrong():
    # -1 ("matched no class") never equals a gold label: 1 of 2 → 0.5
    assert metrics.accuracy([-1, 1], [0, 1]) == pytest.approx(0.5)


def test_f1_macro_three_classes():
    golds = [0, 0, 1, 1, 2, 2]
    preds = [0, 1, 1, 1, 0, 2]
    # class 0: TP 1 (i0), FP 1 (i4), FN 1 (i1) → 2·1/(2·1+1+1) = 0.5
    # class 1: TP 2 (i2,i3), FP 1 (i1), FN 0   → 4/(4+1)        = 0.8
    # class 2: TP 1 (i5), FP 0, FN 1 (i4)      → 2/(2+0+1)      = 2/3
    # mean = (0.5 + 0.8 + 2/3) / 3 = 0.655555…
    assert metrics.f1_macro(preds, golds) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_f1_macro_class_never_predicted_counts_zero():
    golds = [0, 1, 2, 2]
    preds = [0, 1, 1, 1]
    # class 0: TP 1, FP 0, FN 0 → 1
    # class 1: TP 1, FP 2 (i2,i3), FN 0 → 2/(2+2) = 0.5
    # class 2: never predicted: TP 0, FN 2 → 0
    # mean = (1 + 0.5 + 0) / 3 = 0.5
    assert metrics.f1_macro(preds, golds) == pytest.approx(0.5)


def test_f1_macro_unmatched_prediction_is_only_a_false_negative():
    # class 0: TP 0, FP 0, FN 1 → 0; class 1: TP 1 → 1; -1 is no class → mean 0.5
    assert metrics.f1_macro([-1, 1], [0, 1]) == pytest.approx(0.5)


def test_f1_binary_multirc_f1a():
    golds = [1, 1, 0, 0, 1]
    preds = [1, 0, 1, 0, 1]
    # TP 2 (i0,i4), FP 1 (i2), FN 1 (i1) → 2·2/(2·2+1+1) = 4/6 = 2/3
    assert metrics.f1_binary(preds, golds) == pytest.approx(2 / 3)


def test_f1_binary_no_positive_anywhere_is_zero():
    assert metrics.f1_binary([0, 0], [0, 0]) == 0.0


def test_multirc_em():
    golds = [1, 1, 0, 0, 1]
    preds = [1, 1, 1, 0, 1]
    groups = ["q1", "q2", "q2", "q3", "q3"]
    # q1: i0 right → 1; q2: i2 wrong → 0; q3: i3, i4 right → 1  → 2/3
    assert metrics.multirc_em(preds, golds, groups) == pytest.approx(2 / 3)


def test_matthews_binary():
    golds = [1, 1, 1, 0, 0, 0]
    preds = [1, 1, 0, 0, 0, 1]
    # TP 2, FN 1, TN 2, FP 1 → (2·2 − 1·1)/sqrt(3·3·3·3) = 3/9 = 1/3
    assert metrics.matthews_corrcoef(preds, golds) == pytest.approx(1 / 3)


def test_matthews_constant_prediction_is_zero():
    # all "not_entailment": a predicted-class variance of 0 → MCC defined as 0
    assert metrics.matthews_corrcoef([1, 1, 1, 1], [0, 1, 0, 1]) == 0.0


def test_matthews_perfect_and_inverted():
    assert metrics.matthews_corrcoef([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(1.0)
    assert metrics.matthews_corrcoef([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)


def test_normalize_answer_squad_style():
    # lower → "the  eiffel-tower!" → no punctuation → "the  eiffeltower" → no article, one space
    assert metrics.normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert metrics.normalize_answer("  An apple, a pear ") == "apple pear"


def test_token_f1():
    # pred [jonas, brun, said], gold [brun]: overlap 1, P = 1/3, R = 1 → 2·(1/3)·1/(4/3) = 0.5
    assert metrics.token_f1("Jonas Brun said", "Brun") == pytest.approx(0.5)
    assert metrics.token_f1("the", "Brun") == 0.0  # normalises to nothing


def test_record_f1_and_em_max_over_gold():
    predictions = ["Jonas Brun said", "port aldane."]
    answers = [("Jonas Brun", "Brun"), ("Port Aldane",)]
    # q1: vs "Jonas Brun": overlap 2, P 2/3, R 1 → F1 0.8; vs "Brun": 0.5 → max 0.8; EM 0
    # q2: normalised equal → F1 1, EM 1
    assert metrics.record_f1(predictions, answers) == pytest.approx((0.8 + 1.0) / 2)
    assert metrics.record_em(predictions, answers) == pytest.approx(0.5)


def test_record_rejects_unlabeled_queries():
    with pytest.raises(ValueError, match="no gold answers"):
        metrics.record_f1(["x"], [()])


def test_gender_parity():
    preds = [0, 0, 1, 0, 1, 1]
    groups = [0, 0, 1, 1, 2, 2]
    # pair 0 agrees, pair 1 differs, pair 2 agrees → 2/3 (right or wrong does not matter)
    assert metrics.gender_parity(preds, groups) == pytest.approx(2 / 3)


def test_gender_parity_skips_singletons_and_is_nan_without_pairs():
    # group 5 has one member: skipped → only pair 0 (agrees) → 1.0
    assert metrics.gender_parity([1, 1, 0], [0, 0, 5]) == 1.0
    assert math.isnan(metrics.gender_parity([1, 0], [0, 1]))


@pytest.mark.parametrize(
    "fn", [metrics.accuracy, metrics.f1_macro, metrics.f1_binary, metrics.matthews_corrcoef]
)
def test_length_mismatch_and_empty_inputs_raise(fn):
    with pytest.raises(ValueError, match="predictions for"):
        fn([0, 1], [0])
    with pytest.raises(ValueError, match="no examples"):
        fn([], [])
