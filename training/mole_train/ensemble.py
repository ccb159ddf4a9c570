"""What a small ensemble would gain: the mean of several runs' calibrated probabilities, on validation and test.

    python -m mole_train.ensemble --data ../../shared/data/ham10000 --runs-list final,final-seed2
    python -m mole_train.ensemble --data ../../shared/data/ham10000 --runs-list ../models/mole-v2.card.json,v2-seed2

A member is a run under the runs folder (its PyTorch weights) or a shipped model card (its ONNX file, through
onnxruntime: for a model whose run folder is gone).

Each run is calibrated on validation (its own temperature), the probabilities are averaged, and the danger
threshold is chosen on validation for the average, exactly as `finalize` does for one model. It prints the
single runs and the ensemble side by side, with the forward passes (serving cost) each would take. Only a
measurement: nothing is shipped from here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from . import CLASSES, MALIGNANT
from .data import load_records
from .export import onnx_logits, torch_logits
from .finalize import normalised
from .metrics import choose_threshold, fit_temperature, malignant_probability, report, softmax
from .model import build_model
from .split import read_split
from .train import default_runs, load_contract

HERE = Path(__file__).resolve().parent.parent


def load_run(runs: Path, name: str):
    run = runs / name
    summary = json.loads((run / "summary.json").read_text())
    cfg = summary["config"]
    model = build_model(cfg["arch"], len(CLASSES), cfg["width"], cfg["dropout"], drop_path=cfg.get("drop_path", 0.0),
                        colour_constancy=cfg.get("colour_constancy", "none"), mean=summary["mean"], std=summary["std"])
    model.load_state_dict(torch.load(run / "model.pt"))
    return model.eval(), summary


def headline(y, p, threshold) -> dict:
    r = report(y, p, CLASSES, MALIGNANT, threshold)
    return {"balanced_accuracy": round(r["balanced_accuracy"], 4), "macro_auc": round(r["macro_auc"], 4),
            "sensitivity": round(r["malignant"]["sensitivity"], 4), "specificity": round(r["malignant"]["specificity"], 4),
            "ece_15": round(r["ece_15"], 4)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--runs-list", required=True, help="comma-separated run names")
    ap.add_argument("--runs", type=Path, default=None)
    ap.add_argument("--split", type=Path, default=HERE / "split.csv")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    runs = a.runs or default_runs()
    records = load_records(a.data)
    split = read_split(a.split)
    val = [r for r in records if split.get(r.image_id) == "val"]
    test = [r for r in records if split.get(r.image_id) == "test"]
    y_val = np.array([r.label for r in val])
    y_test = np.array([r.label for r in test])
    mal_idx = [CLASSES.index(c) for c in MALIGNANT]
    probs_val, probs_test, out = [], [], {}
    for name in a.runs_list.split(","):
        if name.endswith(".card.json"):
            card = json.loads(Path(name).read_text())
            path = Path(name).parent / card["onnx_file"]
            size, pre = card["input"]["size"], card["preprocessing"]
            s = {"mean": pre["mean"], "std": pre["std"], "flops_per_image": card["architecture"]["flops_per_image"]}

            def logits(x, path=path):
                return onnx_logits(path, x)
        else:
            model, s = load_run(runs, name)
            size = s["config"]["size"]

            def logits(x, model=model):
                return torch_logits(model, x)
        lv = logits(normalised(load_contract(val, size, "val-full", runs), s["mean"], s["std"]))
        lt = logits(normalised(load_contract(test, size, "test-full", runs), s["mean"], s["std"]))
        t = fit_temperature(y_val, lv)
        pv, pt = softmax(lv, t), softmax(lt, t)
        thr = choose_threshold(np.isin(y_val, mal_idx), malignant_probability(pv, mal_idx))
        out[name] = {"validation": headline(y_val, pv, thr), "test": headline(y_test, pt, thr),
                     "flops_per_image": s["flops_per_image"]}
        probs_val.append(pv)
        probs_test.append(pt)
        print(json.dumps({name: out[name]}), flush=True)
    pv, pt = np.mean(probs_val, axis=0), np.mean(probs_test, axis=0)
    thr = choose_threshold(np.isin(y_val, mal_idx), malignant_probability(pv, mal_idx))
    out["ensemble"] = {"members": a.runs_list.split(","), "validation": headline(y_val, pv, thr),
                       "test": headline(y_test, pt, thr),
                       "flops_per_image": sum(v["flops_per_image"] for v in out.values())}
    print(json.dumps({"ensemble": out["ensemble"]}), flush=True)
    return out


if __name__ == "__main__":
    main()
