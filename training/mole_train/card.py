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
