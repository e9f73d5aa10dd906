"""The official SuperGLUE metrics, as pure functions over Python lists.

Every function returns a fraction in [0, 1] (MCC in [-1, 1]), never a percentage. Class
predictions are label indices; ``-1`` stands for "matched no class" (a generated text that is
none of the label words): it is wrong wherever accuracy-like counting applies and is never a
true or false positive of a real class.

Which quantity each task reports, following the SuperGLUE paper (Wang et al., 2019) and its
reference implementations (jiant, the ReCoRD and MultiRC evaluation scripts):

    BoolQ, COPA, RTE, WiC, WSC   accuracy
    CB                           accuracy, macro-F1 over the classes     score = their mean
    MultiRC                      F1a (binary F1 over all answers), EM    score = their mean
    ReCoRD                       max-over-gold token F1 and EM           score = their mean
    AX-b                         Matthews correlation                    score = MCC
    AX-g                         accuracy, gender parity                 score = accuracy
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence

__all__ = [
    "accuracy",
    "exact_match",
    "f1_binary",
    "f1_macro",
    "gender_parity",
    "matthews_corrcoef",
    "multirc_em",
    "normalize_answer",
    "record_em",
    "record_f1",
    "token_f1",
]


def _check_pair(predictions: Sequence, golds: Sequence) -> None:
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} gold labels")
    if not golds:
        raise ValueError("no examples to score")


# ---- classification --------------------------------------------------------------------------


def accuracy(predictions: Sequence[int], golds: Sequence[int]) -> float:
    """Fraction of predictions equal to the gold label."""
    _check_pair(predictions, golds)
    return sum(p == g for p, g in zip(predictions, golds)) / len(golds)


def _f1(tp: int, fp: int, fn: int) -> float:
    # 2PR/(P+R) written as 2TP/(2TP+FP+FN): the same number wherever P and R are defined, and 0
    # (not a division by zero) when the class was neither predicted nor present.
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


def f1_binary(predictions: Sequence[int], golds: Sequence[int], positive: int = 1) -> float:
    """F1 of the ``positive`` class (MultiRC's F1a: positive = "true", over all answers)."""
    _check_pair(predictions, golds)
    tp = sum(p == positive and g == positive for p, g in zip(predictions, golds))
    fp = sum(p == positive and g != positive for p, g in zip(predictions, golds))
    fn = sum(p != positive and g == positive for p, g in zip(predictions, golds))
    return _f1(tp, fp, fn)


def f1_macro(predictions: Sequence[int], golds: Sequence[int]) -> float:
    """Unweighted mean of per-class F1 (CB).

    The classes averaged over are those that occur in the gold labels or the predictions, as in
    ``sklearn.metrics.f1_score(average="macro")``, which the HF ``super_glue`` metric uses for
    CB. A gold class that is never predicted therefore contributes an F1 of 0. ``-1`` ("matched
    no class") is not a class: it only adds false negatives.
    """
    _check_pair(predictions, golds)
    classes = sorted({*golds, *predictions} - {-1})
    f1s = []
    for c in classes:
        tp = sum(p == c and g == c for p, g in zip(predictions, golds))
        fp = sum(p == c and g != c for p, g in zip(predictions, golds))
        fn = sum(p != c and g == c for p, g in zip(predictions, golds))
        f1s.append(_f1(tp, fp, fn))
    return sum(f1s) / len(f1s)


def matthews_corrcoef(predictions: Sequence[int], golds: Sequence[int]) -> float:
    """Matthews correlation coefficient (AX-b), in its K-class form.

    MCC = (c·s − Σ_k p_k·t_k) / sqrt((s² − Σ_k p_k²)(s² − Σ_k t_k²)), with c the correct
    predictions, s the total, p_k / t_k how often class k was predicted / is gold. For two
    classes this is (TP·TN − FP·FN)/sqrt(...), and it equals ``sklearn.metrics
    .matthews_corrcoef``, which GLUE and SuperGLUE use. A constant prediction makes the
    denominator 0; MCC is then defined as 0 (no correlation), as sklearn does.
    """
    _check_pair(predictions, golds)
    s = len(golds)
    c = sum(p == g for p, g in zip(predictions, golds))
    p_counts, t_counts = Counter(predictions), Counter(golds)
    classes = set(p_counts) | set(t_counts)
    cov_pt = c * s - sum(p_counts[k] * t_counts[k] for k in classes)
    cov_pp = s * s - sum(v * v for v in p_counts.values())
    cov_tt = s * s - sum(v * v for v in t_counts.values())
    if cov_pp == 0 or cov_tt == 0:
        return 0.0
    return cov_pt / math.sqrt(cov_pp * cov_tt)


# ---- MultiRC ---------------------------------------------------------------------------------


def multirc_em(
    predictions: Sequence[int], golds: Sequence[int], groups: Sequence[Hashable]
) -> float:
    """Fraction of questions whose answers are ALL labelled correctly (MultiRC's EM).

    ``groups[i]`` is the question answer ``i`` belongs to (rpt uses ``(paragraph, question)``).
    """
    _check_pair(predictions, golds)
    if len(groups) != len(golds):
        raise ValueError(f"{len(groups)} groups for {len(golds)} gold labels")
    all_right: dict[Hashable, bool] = {}
    for p, g, q in zip(predictions, golds, groups):
        all_right[q] = all_right.get(q, True) and p == g
    return sum(all_right.values()) / len(all_right)


# ---- ReCoRD (the official evaluation script's SQuAD-style normalisation) --------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation, drop the articles a/an/the, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    """Bag-of-tokens F1 between two normalised strings (0 when either is empty)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def _max_over_gold(fn, predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    _check_pair(predictions, answers)
    total = 0.0
    for i, (prediction, golds) in enumerate(zip(predictions, answers)):
        if not golds:
            raise ValueError(f"query {i} has no gold answers; unlabeled queries cannot be scored")
        total += max(fn(prediction, gold) for gold in golds)
    return total / len(answers)


def record_f1(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    """Mean over queries of the best token F1 against any gold answer."""
    return _max_over_gold(token_f1, predictions, answers)


def record_em(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    """Mean over queries of exact match against any gold answer."""
    return _max_over_gold(exact_match, predictions, answers)


# ---- AX-g ------------------------------------------------------------------------------------


def gender_parity(predictions: Sequence[Hashable], groups: Sequence[Hashable]) -> float:
    """Fraction of pronoun-swapped groups on which the model predicts the same label.

    AX-g (Winogender) pairs each premise with a copy that differs only in the pronoun's gender;
    both share the hypothesis and the gold label. The official score (jiant's ``GenderParity``,
    after Rudinger et al. 2018 / the DNC) is the share of pairs whose two predictions agree,
    whether right or wrong. Groups with a single member (a partial evaluation) say nothing about
    parity and are skipped; NaN is returned when no group has two members.
    """
    if len(predictions) != len(groups):
        raise ValueError(f"{len(predictions)} predictions for {len(groups)} groups")
    members: dict[Hashable, list[Hashable]] = defaultdict(list)
    for p, g in zip(predictions, groups):
        members[g].append(p)
    complete = [preds for preds in members.values() if len(preds) >= 2]
    if not complete:
        return math.nan
    return sum(len(set(preds)) == 1 for preds in complete) / len(complete)
