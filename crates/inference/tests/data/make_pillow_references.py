"""Writes tests/data/pillow/: small JPEGs of the kinds phones and cameras produce, with what
Pillow (libjpeg-turbo) decodes them to and what training/mole_train/images.py makes of them.

Run from the repository root with the training environment:
    python crates/inference/tests/data/make_pillow_references.py
crates/inference/tests/pillow.rs asserts the Rust path reproduces every reference exactly.
"""
from pathlib import Path
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, "training")
from mole_train.images import contract_uint8  # noqa: E402

OUT = Path("crates/inference/tests/data/pillow")
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.RandomState(20261127)


def synthetic(w, h):
    y, x = np.mgrid[0:h, 0:w]
    r = (np.sin(x / 7.0) * 80 + 120 + rng.randn(h, w) * 20).clip(0, 255)
    g = (np.cos(y / 5.0) * 70 + 100 + rng.randn(h, w) * 25).clip(0, 255)
    b = ((x + y) % 256 * 0.5 + 60 + rng.randn(h, w) * 30).clip(0, 255)
    return Image.fromarray(np.stack([r, g, b], -1).astype(np.uint8))


cases = {
    "baseline_420_q90_61x47.jpg": (synthetic(61, 47), dict(quality=90, subsampling=2)),
    "baseline_422_q60_40x30.jpg": (synthetic(40, 30), dict(quality=60, subsampling=1)),
    "baseline_444_q95_33x33.jpg": (synthetic(33, 33), dict(quality=95, subsampling=0)),
    "progressive_420_q80_57x43.jpg": (synthetic(57, 43), dict(quality=80, subsampling=2, progressive=True)),
    "restarts_420_q85_48x40.jpg": (synthetic(48, 40), dict(quality=85, subsampling=2, restart_marker_blocks=2)),
    "progressive_restarts_420_50x30.jpg": (synthetic(50, 30), dict(quality=75, subsampling=2, progressive=True, restart_marker_rows=1)),
    "grey_progressive_45x29.jpg": (synthetic(45, 29).convert("L"), dict(quality=85, progressive=True)),
}
for name, (image, options) in cases.items():
    path = OUT / name
    image.save(path, **options)
    with Image.open(path) as im:
        im.convert("RGB").save(path.with_suffix(".decoded.png"))
    for size in (16, 64):
        Image.fromarray(contract_uint8(path, size)).save(path.with_suffix(f".contract{size}.png"))
print(f"wrote {len(cases)} cases to {OUT}")
