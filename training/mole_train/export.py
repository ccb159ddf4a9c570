"""ONNX export (legacy TorchScript exporter, opset 17: tract-onnx loads it) and the torch/onnxruntime check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

OPSET = 17


def static_same_padding(model: torch.nn.Module, size: int) -> torch.nn.Module:
    """A copy of ``model`` whose TensorFlow-"same" convolutions (timm's Conv2dSame) pad by constants.

    Conv2dSame computes its padding from the input's shape at every call, which the exporter writes as a
    Shape/Gather/Ceil/Pad chain per strided convolution. The input size is fixed (S x S), so the padding is
    too: each such convolution becomes a constant Pad and a plain Conv. Same arithmetic, simpler graph.
    """
    import copy

    import torch.nn.functional as F

    model = copy.deepcopy(model)
    try:
        from timm.layers.conv2d_same import Conv2dSame
        from timm.layers.padding import get_same_padding
    except ImportError:  # no timm: no Conv2dSame in the model either
        return model
    convs = [m for m in model.modules() if isinstance(m, Conv2dSame)]
    shapes: dict[int, tuple[int, int]] = {}
    hooks = [m.register_forward_pre_hook(lambda m, inp: shapes.__setitem__(id(m), tuple(inp[0].shape[-2:])))
             for m in convs]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    for m in convs:
        ih, iw = shapes[id(m)]
        ph = get_same_padding(ih, m.kernel_size[0], m.stride[0], m.dilation[0])
        pw = get_same_padding(iw, m.kernel_size[1], m.stride[1], m.dilation[1])
        pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)

        def forward(x, m=m, pads=pads):
            return F.conv2d(F.pad(x, pads), m.weight, m.bias, m.stride, 0, m.dilation, m.groups)

        m.forward = forward
    return model


def export_onnx(model: torch.nn.Module, size: int, path: Path) -> None:
    model = static_same_padding(model.eval(), size).to(memory_format=torch.contiguous_format)
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

    Computed in float64 then rounded to float32, the same in both languages (tests/fixtures/parity/<model>.tensors.json).
    """
    n = np.arange(3 * size * size, dtype=np.float64)
    return (np.sin(0.37 * (index + 1) * n * 0.001) * 2.0).astype(np.float32).reshape(3, size, size)
