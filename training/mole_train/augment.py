"""Batched augmentation for dermatoscopy: random resized crops of the full 4:3 frame, any rotation, flips,
colour jitter; for the "robust" setting also colour casts (per-channel gains), blur, JPEG re-compression and
looser framing than the full frame. Runs on whole batches (one affine grid_sample), which keeps 2-core
training fast; every random draw comes from the one generator passed in, so a resumed run that restores it
draws the same augmentations."""

from __future__ import annotations

import math
import io
from dataclasses import dataclass

import numpy as np

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugConfig:
    scale: tuple[float, float]  # crop area as a fraction of the full 4:3 frame
    ratio: tuple[float, float]  # crop aspect ratio (w / h), squashed to a square output
    rotate: bool  # uniform rotation in [0, 360)
    jitter: float  # brightness / contrast / saturation amplitude
    hue: float  # hue rotation amplitude, in turns
    gain: float = 0.0  # per-channel gain amplitude (colour cast / white balance): x_c * (1 ± gain)
    blur_p: float = 0.0  # probability of a Gaussian blur
    blur_sigma: tuple[float, float] = (0.4, 1.6)  # its sigma, in output pixels
    jpeg_p: float = 0.0  # probability of a JPEG re-compression of the source frame
    jpeg_quality: tuple[int, int] = (30, 90)
    max_crop: float = 1.0  # largest crop side as a multiple of the frame (> 1: looser framing, reflected)


AUGMENTATIONS = {
    "light": AugConfig(scale=(0.6, 1.0), ratio=(0.85, 1.33), rotate=False, jitter=0.1, hue=0.0),
    "strong": AugConfig(scale=(0.3, 1.0), ratio=(0.75, 1.33), rotate=True, jitter=0.25, hue=0.04),
    "robust": AugConfig(scale=(0.3, 1.3), ratio=(0.75, 1.33), rotate=True, jitter=0.3, hue=0.04, gain=0.15,
                        blur_p=0.25, jpeg_p=0.25, max_crop=1.25),
}


def jpeg_recompress(batch_u8: torch.Tensor, cfg: AugConfig, gen: torch.Generator) -> torch.Tensor:
    """Re-encode a random subset of [N,3,H,W] uint8 frames as JPEG at a random quality (PIL, 4:2:0)."""
    from PIL import Image

    n = batch_u8.shape[0]
    pick = torch.rand(n, generator=gen) < cfg.jpeg_p
    qual = torch.randint(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1, (n,), generator=gen)
    if not bool(pick.any()):
        return batch_u8
    out = batch_u8.clone()
    for i in torch.nonzero(pick).flatten().tolist():
        buf = io.BytesIO()
        Image.fromarray(batch_u8[i].permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=int(qual[i]))
        buf.seek(0)
        with Image.open(buf) as im:
            out[i] = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
    return out


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur of [N,3,H,W] with per-image sigma [N] (separable, reflect-padded)."""
    n, c, h, w = x.shape
    radius = int(math.ceil(3 * float(sigma.max())))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(t[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)  # [N, K]
    k = k.repeat_interleave(c, 0)  # one kernel per (image, channel)
    y = x.reshape(1, n * c, h, w)
    y = F.pad(y, (radius, radius, 0, 0), mode="reflect")
    y = F.conv2d(y, k[:, None, None, :], groups=n * c)
    y = F.pad(y, (0, 0, radius, radius), mode="reflect")
    y = F.conv2d(y, k[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def augment(batch_u8: torch.Tensor, size: int, cfg: AugConfig, gen: torch.Generator) -> torch.Tensor:
    """[N,3,H,W] uint8 -> [N,3,size,size] float in [0,1]."""
    if cfg.jpeg_p > 0:
        batch_u8 = jpeg_recompress(batch_u8, cfg, gen)
    n, _, h, w = batch_u8.shape
    x = batch_u8.float().div_(255.0)
    r = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    area = (cfg.scale[0] + (cfg.scale[1] - cfg.scale[0]) * r(n)) * (w * h)
    logr = math.log(cfg.ratio[0]) + (math.log(cfg.ratio[1]) - math.log(cfg.ratio[0])) * r(n)
    aspect = torch.exp(logr)
    cw = torch.sqrt(area * aspect).clamp(max=w * cfg.max_crop)
    ch = torch.sqrt(area / aspect).clamp(max=h * cfg.max_crop)
    # centre offset in pixels from the image centre (a crop larger than the frame stays centred)
    cx = (r(n) - 0.5) * (w - cw).clamp(min=0)
    cy = (r(n) - 0.5) * (h - ch).clamp(min=0)
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
    if cfg.gain > 0:
        out = out * (1 + (r(n, 3, 1, 1) * 2 - 1) * cfg.gain)
    if cfg.blur_p > 0:
        pick = r(n) < cfg.blur_p
        sigma = cfg.blur_sigma[0] + (cfg.blur_sigma[1] - cfg.blur_sigma[0]) * r(n)
        if bool(pick.any()):
            idx = torch.nonzero(pick).flatten()
            out[idx] = gaussian_blur(out[idx], sigma[idx])
    return out.clamp_(0.0, 1.0)
