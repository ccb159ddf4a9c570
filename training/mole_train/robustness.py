"""How the model holds up when the photo is taken differently: perturbed copies of the test split.

Each perturbation acts on the decoded photo (PIL, full resolution) before the preprocessing contract, as a
different camera, framing or exposure would. The figures go into the model card (``python -m
mole_train.finalize``) and can be measured for any exported model with ``python -m mole_train.robustness``.
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

from .images import contract_uint8_image, load_rgb


def _gains(r: float, g: float, b: float) -> Callable[[Image.Image], Image.Image]:
    def f(im: Image.Image) -> Image.Image:
        a = np.asarray(im, dtype=np.float32) * np.array([r, g, b], dtype=np.float32)
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))

    return f


def _tight(im: Image.Image, keep: float = 0.8) -> Image.Image:
    """A centred crop keeping `keep` of each side: the lesion fills more of the photo."""
    w, h = im.size
    cw, ch = int(round(w * keep)), int(round(h * keep))
    left, top = (w - cw) // 2, (h - ch) // 2
    return im.crop((left, top, left + cw, top + ch))


def _loose(im: Image.Image, grow: float = 1.25) -> Image.Image:
    """The photo seen from further away: each side grown by `grow` with mirrored skin around it."""
    a = np.asarray(im)
    h, w = a.shape[:2]
    ph, pw = int(round(h * (grow - 1) / 2)), int(round(w * (grow - 1) / 2))
    return Image.fromarray(np.pad(a, ((ph, ph), (pw, pw), (0, 0)), mode="reflect"))


def _jpeg(quality: int) -> Callable[[Image.Image], Image.Image]:
    def f(im: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as out:
            return out.convert("RGB")

    return f


PERTURBATIONS: dict[str, tuple[str, Callable[[Image.Image], Image.Image]]] = {
    "framing_tight": ("centred crop of 80% of each side (lesion 1.25x larger)", _tight),
    "framing_loose": ("each side grown 25% with mirrored surroundings (lesion 0.8x)", _loose),
    "colour_warm": ("white balance: red x1.15, blue x0.85", _gains(1.15, 1.0, 0.85)),
    "colour_cool": ("white balance: red x0.85, blue x1.15", _gains(0.85, 1.0, 1.15)),
    "brightness_dark": ("all channels x0.7", _gains(0.7, 0.7, 0.7)),
    "brightness_bright": ("all channels x1.3 (clipped)", _gains(1.3, 1.3, 1.3)),
    "jpeg_q40": ("re-encoded as JPEG quality 40", _jpeg(40)),
    "blur": ("Gaussian blur, radius 1.5 px of the 200x150 photo", lambda im: im.filter(ImageFilter.GaussianBlur(1.5))),
    "rotate_90": ("rotated 90 degrees", lambda im: im.transpose(Image.Transpose.ROTATE_90)),
}


def perturbed_contract(paths, size: int, perturbation: str | None) -> np.ndarray:
    """[N,S,S,3] uint8: the contract's crop and resize of each photo, perturbed first when asked."""
    f = PERTURBATIONS[perturbation][1] if perturbation else (lambda im: im)
    return np.stack([contract_uint8_image(f(load_rgb(p)), size) for p in paths])


def robustness_report(y: np.ndarray, score: Callable[[np.ndarray], np.ndarray], paths, size: int, threshold: float,
                      classes: list[str], malignant: list[str]) -> dict:
    """Balanced accuracy, sensitivity and specificity on the clean and each perturbed copy, with the drops.

    ``score`` maps [N,S,S,3] uint8 to calibrated probabilities [N,7].
    """
    from .metrics import report

    out = {}
    clean = None
    for name in [None, *PERTURBATIONS]:
        r = report(y, score(perturbed_contract(paths, size, name)), classes, malignant, threshold)
        row = {"balanced_accuracy": r["balanced_accuracy"], "sensitivity": r["malignant"]["sensitivity"],
               "specificity": r["malignant"]["specificity"], "macro_auc": r["macro_auc"]}
        if name is None:
            clean = row
            out["clean"] = row
        else:
            row["description"] = PERTURBATIONS[name][0]
            row["balanced_accuracy_drop"] = clean["balanced_accuracy"] - row["balanced_accuracy"]
            out[name] = row
    out["largest_balanced_accuracy_drop"] = max(v["balanced_accuracy_drop"] for k, v in out.items() if k != "clean")
    return out


def main() -> None:
    import argparse
    import json
    from pathlib import Path

    from . import CLASSES, MALIGNANT
    from .data import load_records
    from .export import onnx_logits
    from .metrics import softmax
    from .split import read_split

    ap = argparse.ArgumentParser(description="Balanced accuracy of a model card's ONNX file on perturbed test photos.")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--card", type=Path, required=True)
    ap.add_argument("--split", type=Path, default=Path(__file__).resolve().parent.parent / "split.csv")
    ap.add_argument("--split-name", default="test")
    a = ap.parse_args()
    card = json.loads(a.card.read_text())
    pre = card["preprocessing"]
    mean = np.asarray(pre["mean"], np.float32)
    std = np.asarray(pre["std"], np.float32)
    onnx = a.card.parent / card["onnx_file"]
    split = read_split(a.split)
    recs = [r for r in load_records(a.data) if split.get(r.image_id) == a.split_name]
    y = np.array([r.label for r in recs])

    def score(u8: np.ndarray) -> np.ndarray:
        x = ((u8.astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2)
        return softmax(onnx_logits(onnx, np.ascontiguousarray(x)), card["temperature"])

    rep = robustness_report(y, score, [r.path for r in recs], card["input"]["size"], card["threshold"], CLASSES, MALIGNANT)
    print(json.dumps(rep, indent=1))


if __name__ == "__main__":
    main()
