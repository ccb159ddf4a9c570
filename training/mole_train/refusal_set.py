"""Builds the refusal test set (tests/fixtures/refusal/): photos and pictures that are not skin lesions.

Every image comes from a package with a permissive licence or is drawn here; nothing is downloaded.
Groups:
- ``photos``: scikit-image's sample photos (objects, animals, scenes, microscopy; BSD-3-Clause) and
  matplotlib's portrait of Grace Hopper (public domain), each whole and as crops;
- ``faces``: the same sources' faces (astronaut, Grace Hopper, the cameraman), whole and cropped to the face;
- ``documents``: scikit-image's ``page`` and ``text``, and drawn text pages and screenshots;
- ``synthetic``: flat colours (skin tones among them), noise, gradients, checkerboards.
Degraded lesion photos (very dark, overexposed, very blurred, too small) are made from the HAM10000 test split
at evaluation time by ``mole refusal``, since the data set itself is not copied into the project.

    python -m mole_train.refusal_set --out ../tests/fixtures/refusal
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MAX_SIDE = 400

SKIMAGE_PHOTOS = [
    "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "color.png",
    "grass.png", "gravel.png", "horse.png", "hubble_deep_field.jpg", "ihc.png", "logo.png", "moon.png",
    "motorcycle_left.png", "retina.jpg", "rocket.jpg", "clock_motion.png", "cell.png", "microaneurysms.png",
]
# (file, box as fractions left, top, right, bottom) of a face.
FACES = [
    ("skimage", "astronaut.png", (0.30, 0.02, 0.62, 0.42)),
    ("skimage", "camera.png", (0.35, 0.08, 0.62, 0.38)),
    ("matplotlib", "grace_hopper.jpg", (0.22, 0.12, 0.80, 0.72)),
]


def _fit(im: Image.Image) -> Image.Image:
    im = im.convert("RGB")
    scale = MAX_SIDE / max(im.size)
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
    return im


def _crops(im: Image.Image) -> list[tuple[str, Image.Image]]:
    """The whole picture, its centre half and two corner quarters-and-a-bit, each at least 150 px."""
    w, h = im.size
    out = [("whole", im)]
    for name, (l, t, r, b) in {
        "centre": (0.25, 0.25, 0.75, 0.75),
        "topleft": (0.0, 0.0, 0.6, 0.6),
        "bottomright": (0.4, 0.4, 1.0, 1.0),
    }.items():
        c = im.crop((round(l * w), round(t * h), round(r * w), round(b * h)))
        if min(c.size) >= 150:
            out.append((name, c))
    return out


def _sources() -> tuple[Path, Path]:
    import matplotlib
    import skimage

    return Path(skimage.__file__).parent / "data", Path(matplotlib.get_data_path()) / "sample_data"


def _text_page(rng: np.random.Generator, w: int, h: int, dark: bool) -> Image.Image:
    bg, fg = ((30, 30, 36), (220, 220, 220)) if dark else ((250, 250, 245), (20, 20, 20))
    im = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=int(rng.integers(11, 22)))
    words = "the mole clinic result page patient photo upload doctor skin report queue model date".split()
    y = 8
    while y < h - 16:
        line = " ".join(rng.choice(words, size=int(rng.integers(3, 9))))
        d.text((8, y), line, fill=fg, font=font)
        y += int(rng.integers(16, 30))
    return im


def _screenshot(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    im = _text_page(rng, w, h, dark=bool(rng.integers(0, 2)))
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, w, 28), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    for _ in range(3):
        x, y = int(rng.integers(0, w - 90)), int(rng.integers(40, h - 40))
        d.rounded_rectangle((x, y, x + 90, y + 30), 6, fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return im


def _synthetic(rng: np.random.Generator) -> list[tuple[str, Image.Image]]:
    w, h = 300, 225
    out: list[tuple[str, Image.Image]] = []
    skin = [(255, 224, 196), (241, 194, 167), (224, 172, 138), (198, 134, 98), (141, 85, 54), (90, 56, 37)]
    for i, c in enumerate(skin):
        out.append((f"flat-skin-{i}", Image.new("RGB", (w, h), c)))
    for i in range(6):
        out.append((f"flat-colour-{i}", Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 256, 3)))))
    for i in range(6):
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        out.append((f"noise-uniform-{i}", Image.fromarray(a)))
        g = np.clip(rng.normal(128, 40, (h, w, 3)), 0, 255).astype(np.uint8)
        out.append((f"noise-gaussian-{i}", Image.fromarray(g)))
    for i in range(6):
        c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        t = np.linspace(0, 1, w)[None, :, None] if i % 2 == 0 else np.linspace(0, 1, h)[:, None, None]
        a = np.broadcast_to(c0 * (1 - t) + c1 * t, (h, w, 3)).astype(np.uint8)
        out.append((f"gradient-{i}", Image.fromarray(np.ascontiguousarray(a))))
    for i, cell in enumerate([8, 16, 32, 64]):
        yy, xx = np.mgrid[0:h, 0:w]
        a = (((yy // cell) + (xx // cell)) % 2 * 255).astype(np.uint8)
        out.append((f"checkerboard-{i}", Image.fromarray(np.stack([a] * 3, -1))))
    return out


def build(out: Path, seed: int = 20261204) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    sk, mpl = _sources()
    rows: list[dict[str, str]] = []

    def save(group: str, name: str, im: Image.Image, source: str) -> None:
        (out / group).mkdir(parents=True, exist_ok=True)
        # Drawn pictures as PNG, except noise (incompressible: JPEG keeps the set small); photos as JPEG.
        lossless = group in ("synthetic", "documents") and not name.startswith("noise")
        rel = f"{group}/{name}.png" if lossless else f"{group}/{name}.jpg"
        im = _fit(im)
        if rel.endswith(".jpg"):
            im.save(out / rel, quality=85)
        else:
            im.save(out / rel, optimize=True)
        rows.append({"file": rel, "group": group, "source": source})

    for f in SKIMAGE_PHOTOS:
        with Image.open(sk / f) as im:
            im = _fit(im)
            for part, c in _crops(im):
                save("photos", f"{Path(f).stem}-{part}", c, f"scikit-image data/{f} (BSD-3-Clause)")
    with Image.open(mpl / "grace_hopper.jpg") as im:
        for part, c in _crops(_fit(im)):
            save("photos", f"grace_hopper-{part}", c, "matplotlib sample_data/grace_hopper.jpg (public domain)")
    for origin, f, (l, t, r, b) in FACES:
        src = (sk if origin == "skimage" else mpl) / f
        lic = "BSD-3-Clause" if origin == "skimage" else "public domain"
        with Image.open(src) as im:
            im = im.convert("RGB")
            w, h = im.size
            face = im.crop((round(l * w), round(t * h), round(r * w), round(b * h)))
            save("faces", f"{Path(f).stem}-face", face, f"{origin} {f} ({lic})")
            for k, s in enumerate((0.8, 0.6)):
                fw, fh = face.size
                c = face.crop((round(fw * (1 - s) / 2), round(fh * (1 - s) / 2), round(fw * (1 + s) / 2), round(fh * (1 + s) / 2)))
                save("faces", f"{Path(f).stem}-face-{k}", c, f"{origin} {f} ({lic})")
    for f in ("page.png", "text.png"):
        with Image.open(sk / f) as im:
            save("documents", Path(f).stem, im, f"scikit-image data/{f} (BSD-3-Clause)")
    for i in range(8):
        save("documents", f"text-page-{i}", _text_page(rng, 320, 400, dark=i % 4 == 3), "drawn here")
    for i in range(8):
        save("documents", f"screenshot-{i}", _screenshot(rng, 390, 300), "drawn here")
    for name, im in _synthetic(rng):
        save("synthetic", name, im, "drawn here")

    with open(out / "manifest.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, ["file", "group", "source"])
        wr.writeheader()
        wr.writerows(rows)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=20261204)
    a = ap.parse_args()
    rows = build(a.out, a.seed)
    from collections import Counter

    print(dict(Counter(r["group"] for r in rows)))


if __name__ == "__main__":
    main()
