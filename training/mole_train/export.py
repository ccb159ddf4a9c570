"""ONNX export (legacy TorchScript exporter, opset 17: tract-onnx loads it) and the torch/onnxruntime check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

OPSET = 17


def export_onnx(model: torch.nn.Module, size: int, path: Path) -> None:
    model = model.eval().to(memory_format=torch.contiguous_format)
    dummy = torch.zeros(1, 3, size, size)
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        dynamo=False,
        opset_version=OPSET,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        do_constant_folding=True,
    )


def onnx_logits(path: Path, x: np.ndarray, batch: int = 64) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return np.concatenate(
        [sess.run(["logits"], {"input": x[i : i + batch].astype(np.float32)})[0] for i in range(0, len(x), batch)]
    )


@torch.no_grad()
def torch_logits(model: torch.nn.Module, x: np.ndarray, batch: int = 64) -> np.ndarray:
    model.eval()
    return np.concatenate([model(torch.from_numpy(x[i : i + batch])).numpy() for i in range(0, len(x), batch)])


def synthetic_tensor(index: int, size: int) -> np.ndarray:
    """A deterministic input that Rust can rebuild bit for bit: x[c,y,x] = sin(0.37 * (i+1) * (c*S*S + y*S + x) * 0.001) * 2.

    Computed in float64 then rounded to float32, the same in both languages (tests/fixtures/tensor_parity.json).
    """
    n = np.arange(3 * size * size, dtype=np.float64)
    return (np.sin(0.37 * (index + 1) * n * 0.001) * 2.0).astype(np.float32).reshape(3, size, size)
