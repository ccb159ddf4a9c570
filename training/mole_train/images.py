"""Image loading for training, and the preprocessing contract in Python.

``contract_tensor`` is the reference implementation of the card's preprocessing contract; the Rust crate
(crates/inference) implements the same steps and is checked against it (tests/fixtures/parity/<model>.images.json).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

CACHE_W, CACHE_H = 200, 150


def load_rgb(path: Path) -> Image.Image:
    """Decode, apply the EXIF orientation, convert to 8-bit RGB."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        return im.convert("RGB")


def centre_square(im: Image.Image) -> Image.Image:
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return im.crop((left, top, left + side, top + side))


def contract_uint8(path: Path, size: int) -> np.ndarray:
    """decode -> RGB -> centre square crop -> resize S x S (bilinear, antialiased) as HWC uint8."""
    return contract_uint8_image(load_rgb(path), size)


def contract_uint8_image(im: Image.Image, size: int) -> np.ndarray:
    """The contract's crop and resize of an already decoded RGB image, as HWC uint8."""
    im = centre_square(im)
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def normalise(hwc_uint8: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """HWC uint8 -> CHW float32: /255 then (x - mean) / std."""
    x = hwc_uint8.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def contract_tensor(path: Path, size: int, mean: list[float], std: list[float]) -> np.ndarray:
    return normalise(contract_uint8(path, size), mean, std)


def load_full_frame(path: Path) -> np.ndarray:
    """The whole field of view at 200x150 (HAM10000's own resolution here) as CHW uint8, for augmentation."""
    im = load_rgb(path)
    if im.size != (CACHE_W, CACHE_H):
        if im.width < im.height:
            im = im.rotate(90, expand=True)
        im = im.resize((CACHE_W, CACHE_H), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
