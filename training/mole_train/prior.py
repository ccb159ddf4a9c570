"""The balanced decision rule, grafted onto an exported graph: each logit shifted by -tau * log(prior).

    python -m mole_train.prior --data ../../shared/data/ham10000 --card ../models/mole-v2.card.json --fit-only
    python -m mole_train.prior --data ../../shared/data/ham10000 --card ../models/mole-v2.card.json --version 2.2.0

Why. mole's networks are trained with class-balanced sampling and a class-weighted loss, yet the class they name
(the largest probability) still leans to the common classes: a network that has fitted its training photos
learns the rare classes from few, memorised examples and is less sure of them on new photos than of naevi.
Balanced accuracy — the mean recall over the seven classes — is best served by naming the class with the
largest p(class | photo) / prior(class)^tau ("logit adjustment", Menon et al., ICLR 2021), i.e. by adding
-tau * log prior_c to logit c. The prior is the train split's class frequency; tau is the one number fitted, on
the validation split's balanced accuracy (a grid; the smallest of equal bests). One number, not seven per-class
offsets: validation holds ~17 df and ~21 vasc photos, too few to fit one offset per class.

What changes. The offset is a constant Add at the end of the graph (the ``logits`` output is the adjusted one;
the network's weights and the ``refusal`` output are untouched), so tract, onnxruntime and the service apply it
identically with no code of their own. Temperature and danger threshold are fitted again on validation for the
adjusted logits (the malignant sum moves too), then the test split is scored once, through onnxruntime.

How sure. ``--fit-only`` prints the grid and a lesion-grouped split-half check without writing anything or
touching the test split: tau is fitted on a random half of the validation lesions and its gain measured on the
other half, 200 times.

The Rust parity fixtures follow exactly: the synthetic tensors' PyTorch logits plus the offset, and the fixture
photos' PyTorch probabilities mapped through the same shift (logits up to a constant = T_old * log p).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from . import CLASSES
from .card import sha256_file, validate_card, write_card, write_markdown
from .data import load_records
from .metrics import balanced_accuracy, softmax
from .split import read_split

HERE = Path(__file__).resolve().parent.parent
REPO = HERE.parent
OUTPUT = "logits"
UNADJUSTED = "logits/unadjusted"
GRID = [round(0.05 * i, 2) for i in range(31)]  # 0 .. 1.5


def offsets(prior: np.ndarray, tau: float) -> np.ndarray:
    """The constant added to each logit: -tau * log prior_c, in float32 as the graph holds it."""
    return (-tau * np.log(prior)).astype(np.float32)


def fit_tau(y: np.ndarray, logits: np.ndarray, prior: np.ndarray, grid=GRID) -> tuple[float, list[float]]:
    """The tau of the grid with the best balanced accuracy on (y, logits); the smallest of equal bests."""
    scores = [balanced_accuracy(y, (logits + offsets(prior, t)).argmax(1), len(CLASSES)) for t in grid]
    return grid[int(np.argmax(scores))], scores


def split_half(y: np.ndarray, logits: np.ndarray, prior: np.ndarray, groups: np.ndarray, repeats: int = 200,
               seed: int = 0) -> dict:
    """Fit tau on a random half of the lesions, measure the balanced-accuracy gain on the other half."""
    rng = np.random.default_rng(seed)
    lesions = np.unique(groups)
    gains, taus = [], []
    for _ in range(repeats):
        half = np.isin(groups, rng.choice(lesions, len(lesions) // 2, replace=False))
        tau, _ = fit_tau(y[half], logits[half], prior)
        rest = ~half
        gains.append(balanced_accuracy(y[rest], (logits[rest] + offsets(prior, tau)).argmax(1), len(CLASSES))
                     - balanced_accuracy(y[rest], logits[rest].argmax(1), len(CLASSES)))
        taus.append(tau)
    g = np.asarray(gains)
    return {"repeats": repeats, "gain_mean": round(float(g.mean()), 4), "gain_sd": round(float(g.std()), 4),
            "gain_below_zero": int((g < 0).sum()), "tau_median": float(np.median(taus)),
            "tau_quartiles": [float(q) for q in np.percentile(taus, [25, 75])]}


def graft(model, bias: np.ndarray):
    """Renames the graph's ``logits`` to ``logits/unadjusted`` and adds ``logits = logits/unadjusted + bias``."""
    import onnx
    from onnx import helper, numpy_helper

    g = model.graph
    if any(n.name == "prior/adjust" for n in g.node):
        raise SystemExit("the graph already has the prior adjustment")
    producers = [n for n in g.node if OUTPUT in n.output]
    if len(producers) != 1 or not any(o.name == OUTPUT for o in g.output):
        raise SystemExit(f"the graph has no single node producing the output {OUTPUT!r}")
    for n in g.node:
        n.output[:] = [UNADJUSTED if o == OUTPUT else o for o in n.output]
        n.input[:] = [UNADJUSTED if i == OUTPUT else i for i in n.input]
    g.initializer.append(numpy_helper.from_array(bias.reshape(1, -1), "prior.bias"))
    g.node.append(helper.make_node("Add", [UNADJUSTED, "prior.bias"], [OUTPUT], name="prior/adjust"))
    onnx.checker.check_model(model)
    return model


def shifted_fixtures(fixtures: Path, name: str, card_path: str, bias: np.ndarray, t_old: float, t_new: float,
                     command: str) -> None:
    """The parity fixtures of the adjusted graph, from the PyTorch figures of the unadjusted one."""
    parity = fixtures / "parity"
    images = json.loads((parity / f"{name}.images.json").read_text())
    for im in images["images"]:
        logits = t_old * np.log(np.maximum(np.asarray(im["probabilities"], np.float64), 1e-12)) + bias
        im["probabilities"] = [round(float(v), 7) for v in softmax(logits[None], t_new)[0]]
    images["card"] = card_path
    images["produced_by"] = (f"{images['produced_by'].split(';')[0]}; then {command}: logits up to a constant "
                             "= T_old * log p, plus the prior offset, softmax(/ T)")
    (parity / f"{name}.images.json").write_text(json.dumps(images, indent=1) + "\n")
    tensors = json.loads((parity / f"{name}.tensors.json").read_text())
    for t in tensors["tensors"]:
        logits = np.asarray(t["logits"], np.float64) + bias
        t["logits"] = [round(float(v), 7) for v in logits]
        t["probabilities"] = [round(float(v), 8) for v in softmax(logits[None], t_new)[0]]
    tensors["card"] = card_path
    tensors["produced_by"] = f"PyTorch forward (mole_train.finalize), plus the prior offset ({command})"
    (parity / f"{name}.tensors.json").write_text(json.dumps(tensors, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    import onnx

    # torch (through finalize and train) only here: the functions above are tested without it.
    from .export import onnx_logits
    from .finalize import BARS_V2, calibrate, normalised, score_frozen, tta_table
    from .train import default_runs, load_contract

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="HAM10000 root")
    ap.add_argument("--card", type=Path, required=True, help="card of the shipped model; rewritten in place")
    ap.add_argument("--version", help="the card's new version (the ONNX file changes)")
    ap.add_argument("--fit-only", action="store_true", help="print the fit on validation; write nothing, no test")
    ap.add_argument("--split", type=Path, default=HERE / "split.csv")
    ap.add_argument("--runs", type=Path, default=None, help="runs folder (image caches)")
    ap.add_argument("--fixtures", type=Path, default=REPO / "tests" / "fixtures")
    ap.add_argument("--min-sensitivity", type=float, default=0.90)
    a = ap.parse_args(argv)
    if not a.fit_only and not a.version:
        raise SystemExit("give --version for the adjusted model, or --fit-only")

    card = json.loads(a.card.read_text())
    if card.get("prior_adjustment"):
        raise SystemExit("the card already has a prior adjustment")
    onnx_path = a.card.parent / card["onnx_file"]
    size, pre = card["input"]["size"], card["preprocessing"]
    records = load_records(a.data)
    split = read_split(a.split)
    train = [r for r in records if split.get(r.image_id) == "train"]
    val = [r for r in records if split.get(r.image_id) == "val"]
    test = [r for r in records if split.get(r.image_id) == "test"]
    prior = np.bincount([r.label for r in train], minlength=len(CLASSES)) / len(train)
    y_val = np.array([r.label for r in val])
    x_val = normalised(load_contract(val, size, "val-full", a.runs or default_runs()), pre["mean"], pre["std"])
    val_logits = onnx_logits(onnx_path, x_val)

    tau, grid_scores = fit_tau(y_val, val_logits, prior)
    check = split_half(y_val, val_logits, prior, np.array([r.lesion_id for r in val]))
    print(json.dumps({"tau": tau, "validation_balanced_accuracy": dict(zip(GRID, [round(s, 4) for s in grid_scores])),
                      "split_half": check}), flush=True)
    if a.fit_only:
        return

    bias = offsets(prior, tau)
    model = graft(onnx.load(onnx_path), bias)
    adjusted = model.SerializeToString()
    tmp = onnx_path.with_suffix(".adjusted.onnx")
    tmp.write_bytes(adjusted)
    new_val_logits = onnx_logits(tmp, x_val)
    worst = float(np.abs(new_val_logits - (val_logits + bias)).max())
    if worst > 1e-5:
        tmp.unlink()
        raise SystemExit(f"the adjusted graph is not the old logits plus the offset (max |diff| {worst:.2e})")
    tmp.replace(onnx_path)

    temperature, threshold, val_report = calibrate(y_val, new_val_logits, a.min_sensitivity)
    val_tta = tta_table(lambda x: onnx_logits(onnx_path, x), x_val, y_val, temperature, threshold)
    # Frozen from here: the test split, scored once.
    test_report, test_tta, robust = score_frozen(onnx_path, test, size, pre["mean"], pre["std"], temperature,
                                                 threshold)

    command = f"python -m mole_train.prior --data <HAM10000> --card models/{a.card.name} --version {a.version}"
    before = {"version": card["version"], "temperature": card["temperature"], "threshold": card["threshold"],
              "validation": card["metrics"]["validation"], "test": card["metrics"]["test"]}
    t_old = card["temperature"]
    card["version"] = a.version
    card["onnx_sha256"] = sha256_file(onnx_path)
    card["temperature"] = round(temperature, 6)
    card["threshold"] = round(threshold, 6)
    card["prior_adjustment"] = {
        "tau": tau,
        "train_prior": [round(float(v), 6) for v in prior],
        "offsets": [round(float(v), 6) for v in bias],
        "node": "prior/adjust: logits = logits/unadjusted + prior.bias",
        "fitted": {
            "by": command,
            "rule": "tau on a grid 0..1.5 (step 0.05) maximising validation balanced accuracy, smallest of equal bests",
            "validation_balanced_accuracy_by_tau": dict(zip([str(t) for t in GRID], [round(s, 4) for s in grid_scores])),
            "split_half_check": check,
        },
        "before": before,
    }
    m = card["metrics"]
    m["selection"] = (f"prior offset (tau), then temperature (NLL) and threshold (highest with sensitivity >= "
                      f"{a.min_sensitivity:.2f}) fitted on validation through onnxruntime; test scored once after")
    m.update(validation=val_report, validation_tta=val_tta, test=test_report, test_tta=test_tta,
             test_robustness=robust)
    problems = validate_card(card, a.card.parent)
    if problems:
        raise SystemExit("card invalid: " + "; ".join(problems))
    write_card(card, a.card)
    md_path = a.card.parent / f"{card['name']}.md"
    write_markdown(card, md_path, BARS_V2)
    shifted_fixtures(a.fixtures, card["name"], f"models/{a.card.name}", bias, t_old, temperature,
                     "python -m mole_train.prior")
    print(f"wrote {onnx_path}, {a.card}, {md_path} and the parity fixtures ({card['name']} {a.version})", flush=True)


if __name__ == "__main__":
    main()
