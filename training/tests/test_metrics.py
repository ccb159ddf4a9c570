import math

import numpy as np
import pytest

from mole_train import metrics as m


def test_confusion_matrix_and_balanced_accuracy_match_a_hand_computed_case():
    y = np.array([0, 0, 0, 0, 1, 1, 2])
    p = np.array([0, 0, 0, 1, 1, 0, 1])
    cm = m.confusion_matrix(y, p, 3)
    assert cm.tolist() == [[3, 1, 0], [1, 1, 0], [0, 1, 0]]
    # recalls 3/4, 1/2, 0/1
    assert m.balanced_accuracy(y, p, 3) == pytest.approx((0.75 + 0.5 + 0.0) / 3)
    assert m.per_class_precision(cm).tolist() == pytest.approx([0.75, 1 / 3, 0.0])


def test_balanced_accuracy_ignores_classes_absent_from_the_truth():
    y = np.array([0, 0, 1])
    p = np.array([0, 2, 1])
    assert m.balanced_accuracy(y, p, 3) == pytest.approx((0.5 + 1.0) / 2)


def test_auc_counts_ties_as_half():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.8, 0.8, 0.9, 0.1])
    # pairs (pos, neg): (0.8,0.8)=0.5 (0.8,0.1)=1 (0.9,0.8)=1 (0.9,0.1)=1 -> 3.5/4
    assert m.roc_auc(y, s) == pytest.approx(0.875)
    assert math.isnan(m.roc_auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_ece_of_a_hand_computed_two_bin_case():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    y = np.array([0, 1, 0, 0])
    # bin (0.867,0.933]: conf 0.9, acc 0.5 ; bin (0.533,0.6]: conf 0.6 acc 1.0
    assert m.expected_calibration_error(y, probs, 15) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)


def test_fit_temperature_recovers_the_temperature_that_generated_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20000, 5)) * 3
    true_t = 2.5
    p = m.softmax(logits, true_t)
    y = np.array([rng.choice(5, p=row) for row in p])
    assert m.fit_temperature(y, logits) == pytest.approx(true_t, rel=0.05)


def test_threshold_keeps_the_required_sensitivity_and_is_the_highest_that_does():
    is_mal = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0])
    p = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.05, 0.2, 0.35, 0.1])
    t = m.choose_threshold(is_mal, p, 0.9)
    assert t == pytest.approx(0.3)
    sens, spec = m.sensitivity_specificity(is_mal, p, t)
    assert sens == pytest.approx(0.9)
    assert spec == pytest.approx(2 / 3)
    # any higher threshold loses sensitivity
    assert m.sensitivity_specificity(is_mal, p, 0.31)[0] < 0.9


def test_report_sums_malignant_classes():
    classes = ["a", "b", "c"]
    probs = np.array([[0.2, 0.3, 0.5], [0.7, 0.2, 0.1]])
    r = m.report(np.array([2, 0]), probs, classes, ["b", "c"], threshold=0.5)
    assert r["malignant"]["sensitivity"] == 1.0 and r["malignant"]["specificity"] == 1.0
    assert r["confusion_matrix"] == [[1, 0, 0], [0, 0, 0], [0, 0, 1]]
