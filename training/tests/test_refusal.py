"""The shipped model's refusal output (python -m mole_train.refusal grafted it): the graph computes what numpy
computes, and it tells lesion photos from pictures that are not lesions. Needs onnxruntime, not torch."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mole_train.images import contract_uint8
from mole_train.refusal import SIGNALS, image_signals, refused, run_graph, stage_statistics

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "models" / "mole-v2.card.json"

ort = pytest.importorskip("onnxruntime")


def signals(paths):
    card = json.loads(CARD.read_text())
    u8 = np.stack([contract_uint8(p, card["input"]["size"]) for p in paths])
    pre = card["preprocessing"]
    _, sig = run_graph((CARD.parent / card["onnx_file"]).read_bytes(), u8, pre["mean"], pre["std"])
    return card, u8, sig


def lesions():
    return sorted((REPO / "tests" / "fixtures" / "ham10000").glob("*.jpg"))


def test_the_graph_computes_luma_and_sharpness_as_numpy_does():
    card, u8, sig = signals(lesions()[:8])
    assert card["refusal"]["signals"] == SIGNALS
    luma, sharp = image_signals(u8)
    np.testing.assert_allclose(sig[:, 1], luma, atol=1e-4)
    np.testing.assert_allclose(sig[:, 2], sharp, rtol=1e-3, atol=1e-8)


def test_lesion_photos_pass_and_pictures_that_are_not_lesions_do_not():
    card, _, les = signals(lesions())
    lim = card["refusal"]
    out = refused({k: les[:, i] for i, k in enumerate(SIGNALS)}, lim)
    assert out.sum() <= 1, f"{out.sum()} of {len(out)} lesion fixtures refused"
    root = REPO / "tests" / "fixtures" / "refusal"
    rows = list(csv.DictReader(open(root / "manifest.csv")))
    picked = [root / r["file"] for r in rows if r["group"] in ("documents", "synthetic")][::3]
    _, _, other = signals(picked)
    assert (other[:, 0] > lim["ood_max"]).mean() >= 0.95


def test_stage_statistics_are_mean_and_population_std():
    t = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    f = stage_statistics(t)
    assert f.shape == (2, 6)
    np.testing.assert_allclose(f[:, :3], t.mean((2, 3)))
    np.testing.assert_allclose(f[:, 3:], t.std((2, 3)))
