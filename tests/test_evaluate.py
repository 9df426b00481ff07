"""Evaluation metrics against hand-computed cases; ensembles, comparison and robustness."""

import math
import warnings

import numpy as np
import pytest

from digitlab.data import Dataset
from digitlab.errors import DigitlabError
from digitlab.data import corrupt_dataset
from conftest import strokes
from digitlab.evaluate import (
    Comparison,
    Ensemble,
    Evaluation,
    abstain,
    classification_report,
    compare,
    confusion_matrix,
    ensemble_proba,
    evaluate_model,
    mcnemar_exact,
    robustness,
)


class Fixed:
    """A 'model' that answers with fixed probabilities."""

    def __init__(self, probs):
        self.probs = np.asarray(probs, np.float32)

    def predict_proba(self, images):
        return self.probs[: len(images)]


def one_hot_probs(predicted, confidence=0.9, k=10):
    p = np.full((len(predicted), k), (1 - confidence) / (k - 1), np.float32)
    p[np.arange(len(predicted)), predicted] = confidence
    return p


# ------------------------------------------------------------------------------------- metrics


def test_confusion_matrix_by_hand():
    y = [0, 0, 1, 2, 2, 2]
    p = [0, 1, 1, 2, 0, 2]
    expected = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    np.testing.assert_array_equal(confusion_matrix(y, p, k=3), expected)
    assert confusion_matrix(y, p).shape == (10, 10) and confusion_matrix(y, p).sum() == 6


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(DigitlabError, match="0..2"):
        confusion_matrix([0, 3], [0, 1], k=3)
    with pytest.raises(DigitlabError, match="shapes"):
        confusion_matrix([0, 1], [0], k=3)


def test_precision_recall_f1_by_hand():
    # class 0: TP 1, FP 1 (the 2 called 0), FN 1 -> P 1/2, R 1/2, F1 1/2
    # class 1: TP 1, FP 1, FN 0 -> P 1/2, R 1, F1 2/3
    # class 2: TP 2, FP 0, FN 1 -> P 1, R 2/3, F1 4/5
    r = classification_report([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], k=3)
    np.testing.assert_allclose(r.precision, [1 / 2, 1 / 2, 1])
    np.testing.assert_allclose(r.recall, [1 / 2, 1, 2 / 3])
    np.testing.assert_allclose(r.f1, [1 / 2, 2 / 3, 4 / 5])
    np.testing.assert_array_equal(r.support, [2, 1, 3])
    assert r.macro["f1"] == pytest.approx((1 / 2 + 2 / 3 + 4 / 5) / 3)


def test_absent_classes_are_nan_without_warnings():
    y = [0, 0, 1, 1]  # class 2 never occurs, class 3 never occurs
    p = [0, 2, 1, 1]  # class 2 is predicted once (wrongly), class 3 never
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division warning may escape
        r = classification_report(y, p, k=4)
    assert r.precision[2] == 0.0 and math.isnan(r.recall[2]) and r.f1[2] == 0.0  # predicted, absent
    assert math.isnan(r.precision[3]) and math.isnan(r.recall[3]) and math.isnan(r.f1[3])  # in neither
    # a class that occurs but is never predicted: precision NaN, recall 0, F1 0
    r = classification_report([0, 1], [0, 0], k=2)
    assert math.isnan(r.precision[1]) and r.recall[1] == 0 and r.f1[1] == 0
    # macro: over classes present in the labels, NaN precision counting as 0
    assert r.macro["precision"] == pytest.approx((0.5 + 0) / 2)
    assert r.macro["recall"] == pytest.approx((1 + 0) / 2)


def test_evaluation_of_fixed_answers():
    labels = np.array([3, 1, 4, 1, 5])
    probs = one_hot_probs([3, 7, 4, 2, 5], 0.6)
    probs[3] = one_hot_probs([2], 0.95)[0]  # the most confident mistake
    data = Dataset(np.zeros((5, 4, 4), np.uint8), labels)
    e = evaluate_model(Fixed(probs), data)
    assert e.accuracy == pytest.approx(0.6) and e.errors == 2
    np.testing.assert_array_equal(e.mistakes, [3, 1])  # most confident first
    assert e.loss == pytest.approx(-np.mean(np.log(probs[np.arange(5), labels])), rel=1e-5)
    assert e.confusion[1, 7] == 1 and e.confusion[1, 2] == 1 and np.trace(e.confusion) == 3
    with pytest.raises(DigitlabError, match="5 x 10"):
        Evaluation(data, probs[:4])


def test_abstain_by_hand():
    labels = np.array([0, 1, 2, 3])
    probs = np.vstack([one_hot_probs([0], 0.99), one_hot_probs([1], 0.6), one_hot_probs([0], 0.95),
                       one_hot_probs([3], 0.5)])
    assert abstain(probs, labels, 0.9) == (0.5, 0.5)  # keeps 0 (right) and 2 (wrong)
    assert abstain(probs, labels, 0.0) == (1.0, 0.75)
    coverage, accuracy = abstain(probs, labels, 1.0)
    assert coverage == 0 and math.isnan(accuracy)
    with pytest.raises(DigitlabError, match="threshold"):
        abstain(probs, labels, 1.5)


def test_ensemble_is_the_mean_probability():
    a, b = one_hot_probs([1, 2], 0.9), one_hot_probs([1, 5], 0.5)
    np.testing.assert_allclose(ensemble_proba([Fixed(a), Fixed(b)], np.zeros((2, 4, 4))), (a + b) / 2)
    np.testing.assert_allclose(Ensemble([Fixed(a), Fixed(b)]).predict_proba(np.zeros((2, 4, 4))), (a + b) / 2)
    with pytest.raises(DigitlabError):
        Ensemble([])


def test_compare_and_mcnemar():
    labels = np.array([0, 1, 2, 3, 4, 5])
    data = Dataset(np.zeros((6, 4, 4), np.uint8), labels)
    a = Fixed(one_hot_probs([0, 1, 2, 3, 9, 9]))  # right on 4
    b = Fixed(one_hot_probs([0, 9, 9, 9, 4, 5]))  # right on 3
    c = compare(a, b, data)
    assert isinstance(c, Comparison)
    np.testing.assert_array_equal(c.disagree, [1, 2, 3, 4, 5])
    assert (c.only_a, c.only_b) == (3, 2)
    assert c.p_value == pytest.approx(1.0)  # 3 vs 2 of 5: as even as it gets
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 2000) < 1e-300  # exact integers: no underflow to garbage
    assert mcnemar_exact(0, 2000) >= 0


# ------------------------------------------------------------------------------------- robustness


def test_robustness_table_and_corrupt_dataset():
    images = strokes(20)
    data = Dataset(images, np.arange(20) % 10, "toy")
    model = Fixed(one_hot_probs(np.arange(20) % 10))  # always right, whatever the image
    steps = []
    r = robustness(model, data, kinds=("blur", "invert"), severities=(1, 5), on_step=lambda k, s: steps.append((k, s)))
    assert r.clean == 1.0 and r.accuracy == {"blur": [1.0, 1.0], "invert": [1.0, 1.0]} and r.mean == 1.0
    assert steps == [("blur", 1), ("blur", 5), ("invert", 1), ("invert", 5)]
    corrupted = corrupt_dataset(data, "thin", 2)
    assert corrupted.name == "toy+thin2" and np.array_equal(corrupted.labels, data.labels)
    with pytest.raises(DigitlabError, match="unknown corruption"):
        robustness(model, data, kinds=("fog",))
