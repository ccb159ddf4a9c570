"""Measure candidate architectures for CPU training and CPU serving.

    python -m mole_train.archbench [--out ARCHITECTURES.md]

For each candidate: parameters, FLOPs per image, PyTorch training time per 7k-image epoch (2 threads,
batch 64, channels_last) and onnxruntime single-thread inference images/s at batch 1 (random weights: speed
does not depend on them). tract's speed on the exported file is measured by `mole bench-model` (Rust).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .export import export_onnx
from .model import build_model, count_flops, count_parameters

CANDIDATES = [("mnv3s", 1.0, 128), ("mnv3s", 1.0, 160), ("mnv3s", 0.75, 128), ("resnet10n", 0.75, 128),
              ("resnet10n", 1.0, 128), ("resnet18", 1.0, 128)]


def train_step_seconds(model, size: int, steps: int = 3) -> float:
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(64, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (64,))
    for i in range(steps + 1):
        if i == 1:
            t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t) / steps


def ort_images_per_second(path: Path, size: int, seconds: float = 3.0) -> float:
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    s = ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(1, 3, size, size)).astype(np.float32)
    s.run(None, {"input": x})
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        s.run(None, {"input": x})
        n += 1
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(2)
    lines = ["| arch | width | size | params (M) | MFLOPs/img | torch train min/epoch (7k imgs, 2 thr) | onnxruntime img/s (1 thr, batch 1) |",
             "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as d:
        for arch, width, size in CANDIDATES:
            torch.manual_seed(0)
            m = build_model(arch, 7, width)
            params, flops = count_parameters(m), count_flops(m, size)
            step = train_step_seconds(m, size)
            p = Path(d) / f"{arch}.onnx"
            export_onnx(build_model(arch, 7, width).eval(), size, p)
            ips = ort_images_per_second(p, size)
            line = (f"| {arch} | {width} | {size} | {params / 1e6:.2f} | {flops / 1e6:.0f} | "
                    f"{step * 7000 / 64 / 60:.2f} | {ips:.0f} |")
            print(line, flush=True)
            lines.append(line)
    if a.out:
        a.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
