"""Batched augmentation for dermatoscopy: random resized crops of the full 4:3 frame, any rotation, flips,
colour jitter. Runs on whole batches (one affine grid_sample), which keeps 2-core training fast."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugConfig:
    scale: tuple[float, float]  # crop area as a fraction of the full 4:3 frame
    ratio: tuple[float, float]  # crop aspect ratio (w / h), squashed to a square output
    rotate: bool  # uniform rotation in [0, 360)
    jitter: float  # brightness / contrast / saturation amplitude
    hue: float  # hue rotation amplitude, in turns


AUGMENTATIONS = {
    "light": AugConfig(scale=(0.6, 1.0), ratio=(0.85, 1.33), rotate=False, jitter=0.1, hue=0.0),
    "strong": AugConfig(scale=(0.3, 1.0), ratio=(0.75, 1.33), rotate=True, jitter=0.25, hue=0.04),
}


def augment(batch_u8: torch.Tensor, size: int, cfg: AugConfig, gen: torch.Generator) -> torch.Tensor:
    """[N,3,H,W] uint8 -> [N,3,size,size] float in [0,1]."""
    n, _, h, w = batch_u8.shape
    x = batch_u8.float().div_(255.0)
    r = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    area = (cfg.scale[0] + (cfg.scale[1] - cfg.scale[0]) * r(n)) * (w * h)
    logr = math.log(cfg.ratio[0]) + (math.log(cfg.ratio[1]) - math.log(cfg.ratio[0])) * r(n)
    aspect = torch.exp(logr)
    cw = torch.sqrt(area * aspect).clamp(max=w)
    ch = torch.sqrt(area / aspect).clamp(max=h)
    cx = (r(n) - 0.5) * (w - cw)  # centre offset in pixels from the image centre
    cy = (r(n) - 0.5) * (h - ch)
    if cfg.rotate:
        ang = r(n) * 2 * math.pi
    else:
        ang = torch.randint(0, 4, (n,), generator=gen).float() * (math.pi / 2)
    cos, sin = torch.cos(ang), torch.sin(ang)
    flip = torch.where(r(n) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * cw / w * flip
    theta[:, 0, 1] = -sin * ch / w
    theta[:, 0, 2] = cx / (w / 2)
    theta[:, 1, 0] = sin * cw / h * flip
    theta[:, 1, 1] = cos * ch / h
    theta[:, 1, 2] = cy / (h / 2)
    grid = F.affine_grid(theta, (n, 3, size, size), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if cfg.jitter > 0:
        j = cfg.jitter
        bright = 1 + (r(n, 1, 1, 1) * 2 - 1) * j
        contrast = 1 + (r(n, 1, 1, 1) * 2 - 1) * j
        sat = 1 + (r(n, 1, 1, 1) * 2 - 1) * j
        out = out * bright
        grey = (0.299 * out[:, 0:1] + 0.587 * out[:, 1:2] + 0.114 * out[:, 2:3])
        out = (out - grey.mean(dim=(2, 3), keepdim=True)) * contrast + grey.mean(dim=(2, 3), keepdim=True)
        grey = (0.299 * out[:, 0:1] + 0.587 * out[:, 1:2] + 0.114 * out[:, 2:3])
        out = (out - grey) * sat + grey
    if cfg.hue > 0:
        # Rotate chroma in YIQ space.
        a = (r(n) * 2 - 1) * cfg.hue * 2 * math.pi
        to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        from_yiq = torch.linalg.inv(to_yiq)
        rot = torch.zeros(n, 3, 3)
        rot[:, 0, 0] = 1
        rot[:, 1, 1] = torch.cos(a)
        rot[:, 1, 2] = -torch.sin(a)
        rot[:, 2, 1] = torch.sin(a)
        rot[:, 2, 2] = torch.cos(a)
        m = from_yiq @ rot @ to_yiq  # [n,3,3]
        out = torch.einsum("nij,njhw->nihw", m, out)
    return out.clamp_(0.0, 1.0)
