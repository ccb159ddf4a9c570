"""The balanced decision rule (python -m mole_train.prior): fitting tau, the graft, the shifted fixtures, and the
markdown sections carried over. The fitting needs numpy only; the graft needs onnx and onnxruntime."""

import json

import numpy as np
import pytest

from mole_train import CLASSES
from mole_train.metrics import balanced_accuracy, softmax
from mole_train.card import carry_hand_sections
from mole_train.prior import GRID, fit_tau, offsets, shifted_fixtures, split_half


def leaning_logits(n_per_class, lean=1.5, seed=0):
    """Noisy logits whose true class is ahead by 2, plus a lean towards the frequent classes."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    prior = np.asarray(n_per_class) / sum(n_per_class)
    logits = rng.normal(0, 1.2, (len(y), len(n_per_class))) + lean * np.log(prior)
    logits[np.arange(len(y)), y] += 2.0
    return y, logits.astype(np.float32), prior


def test_fit_tau_undoes_a_lean_towards_common_classes():
    y, logits, prior = leaning_logits([40, 60, 120, 20, 120, 700, 25])
    tau, scores = fit_tau(y, logits, prior)
    assert 1.0 <= tau <= 2.0, tau
    assert max(scores) == scores[GRID.index(tau)]
    base = balanced_accuracy(y, logits.argmax(1), len(CLASSES))
    assert balanced_accuracy(y, (logits + offsets(prior, tau)).argmax(1), len(CLASSES)) > base + 0.05


def test_fit_tau_leaves_balanced_logits_alone_and_prefers_the_smallest_of_equal_bests():
    y, logits, prior = leaning_logits([50] * 7, lean=0.0)
    tau, _ = fit_tau(y, logits, prior)
    assert tau == 0.0  # a uniform prior shifts every logit equally: every tau ties


def test_offsets_are_minus_tau_log_prior_in_float32():
    prior = np.array([0.03, 0.05, 0.11, 0.01, 0.11, 0.67, 0.02])
    b = offsets(prior, 0.5)
    assert b.dtype == np.float32
    np.testing.assert_allclose(b, -0.5 * np.log(prior), rtol=1e-6)
    assert b.argmax() == 3 and b.argmin() == 5  # the rarest class gains most


def test_split_half_measures_the_gain_on_lesions_it_did_not_fit():
    y, logits, prior = leaning_logits([40, 60, 120, 20, 120, 700, 25])
    groups = np.arange(len(y)) // 2  # two photos per lesion
    check = split_half(y, logits, prior, groups, repeats=20)
    assert check["gain_mean"] > 0.05 and check["gain_below_zero"] == 0, check
    y, logits, prior = leaning_logits([50] * 7, lean=0.0)
    assert split_half(y, logits, prior, np.arange(len(y)), repeats=20)["gain_mean"] == 0.0


def test_shifted_fixtures_match_the_shifted_logits(tmp_path):
    parity = tmp_path / "parity"
    parity.mkdir()
    logits = np.array([[-1.0, 0.5, 2.0, -3.0, 1.0, 4.0, -0.5], [2.0, -1.0, 0.0, 0.3, 1.5, -2.0, 0.2]])
    t_old, t_new = 1.2, 1.3
    probs = softmax(logits, t_old)
    (parity / "m.images.json").write_text(json.dumps({"card": "old", "produced_by": "finalize", "images": [
        {"file": f"{i}.jpg", "probabilities": [round(float(v), 7) for v in p]} for i, p in enumerate(probs)]}))
    (parity / "m.tensors.json").write_text(json.dumps({"card": "old", "tolerance": 1e-4, "tensors": [
        {"index": i, "logits": [float(v) for v in lg], "probabilities": []} for i, lg in enumerate(logits)]}))
    bias = offsets(np.array([0.03, 0.05, 0.11, 0.01, 0.11, 0.67, 0.02]), 0.55)
    shifted_fixtures(tmp_path, "m", "models/m.card.json", bias, t_old, t_new, "test")
    want = softmax(logits + bias, t_new)
    images = json.loads((parity / "m.images.json").read_text())
    tensors = json.loads((parity / "m.tensors.json").read_text())
    assert images["card"] == tensors["card"] == "models/m.card.json"
    np.testing.assert_allclose([im["probabilities"] for im in images["images"]], want, atol=1e-6)
    np.testing.assert_allclose([t["logits"] for t in tensors["tensors"]], logits + bias, atol=1e-6)
    np.testing.assert_allclose([t["probabilities"] for t in tensors["tensors"]], want, atol=1e-7)


def test_hand_written_sections_are_carried_over():
    old = "# card 1\n\n## Figures\nold figures\n\n## Written by hand\nkeep me\n"
    new = "# card 2\n\n## Figures\nnew figures\n"
    out = carry_hand_sections(old, new)
    assert out.startswith("# card 2") and "new figures" in out and "old figures" not in out
    assert out.rstrip().endswith("## Written by hand\nkeep me")


def test_graft_adds_the_offsets_and_leaves_other_outputs_on_the_unadjusted_logits():
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    from mole_train.prior import graft

    # input -> Relu -> logits; a second output computed from the logits (as a refusal-like branch would be)
    f = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", 7])  # noqa: E731
    g = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["logits"]), helper.make_node("Neg", ["logits"], ["other"])],
        "g", [f("input")], [f("logits"), f("other")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    bias = offsets(np.array([0.03, 0.05, 0.11, 0.01, 0.11, 0.67, 0.02]), 0.55)
    grafted = graft(model, bias)
    x = np.random.default_rng(0).normal(0, 1, (4, 7)).astype(np.float32)
    s = ort.InferenceSession(grafted.SerializeToString(), providers=["CPUExecutionProvider"])
    logits, other = s.run(["logits", "other"], {"input": x})
    np.testing.assert_allclose(logits, np.maximum(x, 0) + bias, atol=1e-6)
    np.testing.assert_allclose(other, -np.maximum(x, 0), atol=1e-6)
    with pytest.raises(SystemExit, match="already"):
        graft(grafted, bias)
