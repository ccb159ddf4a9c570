"""Metrics, calibration and the danger threshold. Pure numpy: no torch needed (CI runs these tests)."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def per_class_precision(cm: np.ndarray) -> np.ndarray:
    predicted = cm.sum(axis=0)
    return np.where(predicted > 0, np.diag(cm) / np.maximum(predicted, 1), 0.0)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean recall over the classes present in y_true."""
    r = per_class_recall(confusion_matrix(y_true, y_pred, n_classes))
    return float(np.nanmean(r))


def roc_auc(y_binary: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties). NaN if one class is absent."""
    y = np.asarray(y_binary).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def macro_auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    aucs = [roc_auc(np.asarray(y_true) == k, probs[:, k]) for k in range(probs.shape[1])]
    return float(np.nanmean(aucs))


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins over (0, 1]."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def nll(y_true: np.ndarray, logits: np.ndarray, temperature: float) -> float:
    p = softmax(logits, temperature)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y_true)), y_true], 1e-12, None))))


def fit_temperature(y_true: np.ndarray, logits: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """The temperature that minimises validation NLL (golden-section search on log T; NLL is unimodal in T)."""
    a, b = np.log(lo), np.log(hi)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(80):
        if nll(y_true, logits, np.exp(c)) < nll(y_true, logits, np.exp(d)):
            b = d
        else:
            a = c
        c, d = b - g * (b - a), a + g * (b - a)
    return float(np.exp((a + b) / 2))


def malignant_probability(probs: np.ndarray, malignant_idx: list[int]) -> np.ndarray:
    return probs[:, malignant_idx].sum(axis=1)


def sensitivity_specificity(is_malignant: np.ndarray, p_malignant: np.ndarray, threshold: float) -> tuple[float, float]:
    y = np.asarray(is_malignant).astype(bool)
    flagged = np.asarray(p_malignant) >= threshold
    sens = float((flagged & y).sum() / max(y.sum(), 1))
    spec = float((~flagged & ~y).sum() / max((~y).sum(), 1))
    return sens, spec


def choose_threshold(is_malignant: np.ndarray, p_malignant: np.ndarray, min_sensitivity: float = 0.90) -> float:
    """The highest threshold whose sensitivity is >= min_sensitivity (highest specificity at that bar).

    Candidates are the observed scores of malignant cases: flagging ``p >= t`` keeps every malignant case
    whose score is at least t, so the k-th largest malignant score is the largest t that keeps k of them.
    """
    y = np.asarray(is_malignant).astype(bool)
    scores = np.sort(np.asarray(p_malignant)[y])[::-1]
    if len(scores) == 0:
        raise ValueError("no malignant cases to choose a threshold on")
    k = int(np.ceil(min_sensitivity * len(scores)))
    return float(scores[k - 1])


def report(y_true: np.ndarray, probs: np.ndarray, classes: list[str], malignant: list[str], threshold: float) -> dict:
    """All figures the model card records for one split."""
    y_true = np.asarray(y_true)
    n = len(classes)
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, pred, n)
    rec, prec = per_class_recall(cm), per_class_precision(cm)
    mal_idx = [classes.index(c) for c in malignant]
    is_mal = np.isin(y_true, mal_idx)
    p_mal = malignant_probability(probs, mal_idx)
    sens, spec = sensitivity_specificity(is_mal, p_mal, threshold)
    return {
        "n": int(len(y_true)),
        "balanced_accuracy": float(np.nanmean(rec)),
        "accuracy": float((pred == y_true).mean()),
        "macro_auc": macro_auc(y_true, probs),
        "ece_15": expected_calibration_error(y_true, probs, 15),
        "per_class": {
            c: {
                "precision": float(prec[k]),
                "recall": float(rec[k]),
                "support": int(cm[k].sum()),
                "auc": roc_auc(y_true == k, probs[:, k]),
            }
            for k, c in enumerate(classes)
        },
        "confusion_matrix": cm.tolist(),
        "malignant": {
            "threshold": float(threshold),
            "sensitivity": sens,
            "specificity": spec,
            "auc": roc_auc(is_mal, p_mal),
            "n_malignant": int(is_mal.sum()),
        },
    }
