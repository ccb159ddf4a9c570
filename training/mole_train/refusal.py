"""Refusal of photos the model cannot judge: grafted onto a shipped ONNX model, fitted on lesion photos only.

The shipped graph gains a second output, ``refusal`` ``[N, 3]``, computed in the same forward pass as the logits:

- ``ood``: how unlike the training lesions the photo's feature statistics are. At eight points of the network
  (the colour-corrected input and the output of each of the seven stages of blocks) the per-channel mean and
  standard deviation over the image form a vector; its squared Mahalanobis distance to the train split's
  mean under their (shrunk) covariance, divided by its length, is scaled by its 99th percentile on the
  validation split; ``ood`` is the largest of the eight. Low-level statistics (colour, texture) catch
  documents, flat colours and noise that the last layer's features, tuned to tell lesions apart, do not
  (README of the refusal set: penultimate-feature Mahalanobis, energy and max-softmax compared).
- ``luma``: mean brightness (Rec. 601 luma, 0-1) of the model's view (before colour correction);
- ``sharpness``: mean squared 4-neighbour Laplacian of that luma (valid region): low for blurred photos.

Limits: each signal's limit is a quantile of the validation split's lesion photos (``--q-*``); the test split
is only measured (by ``mole refusal`` in Rust, through the service's own preprocessing and backend, and here
through onnxruntime as a cross-check). The refusal test set (tests/fixtures/refusal/) is not used here.

    python -m mole_train.refusal --data /path/to/ham10000 --card ../models/mole-v2.card.json \\
        --version 2.1.0   # rewrites the ONNX file and the card in place
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

# Where the feature statistics are taken (EfficientNet-Lite as exported by mole_train.export).
STAGES = [
    "/0/Div_1_output_0",  # the colour-corrected input
    "/1/blocks/blocks.0/blocks.0.0/conv_pw/Conv_output_0",
    "/1/blocks/blocks.1/blocks.1.1/Add_output_0",
    "/1/blocks/blocks.2/blocks.2.1/Add_output_0",
    "/1/blocks/blocks.3/blocks.3.2/Add_output_0",
    "/1/blocks/blocks.4/blocks.4.2/Add_output_0",
    "/1/blocks/blocks.5/blocks.5.3/Add_output_0",
    "/1/blocks/blocks.6/blocks.6.0/conv_pwl/Conv_output_0",
]
UNNORMALISED = "/0/Add_output_0"  # x * std + mean: the photo back in 0..1, the shipped graph's first node
OUTPUT = "refusal"
SIGNALS = ["ood", "luma", "sharpness"]
LUMA = [0.299, 0.587, 0.114]
LAPLACIAN = [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]


def stage_statistics(t: np.ndarray) -> np.ndarray:
    """[N, C, H, W] -> [N, 2C]: per-channel mean and (population) standard deviation over the image."""
    return np.concatenate([t.mean((2, 3)), t.std((2, 3))], 1)


def fit_gaussian(f: np.ndarray, shrink: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and a whitening matrix W (Sigma^-1 = W W^T) of the covariance shrunk towards its mean eigenvalue:
    Sigma = (1 - shrink) S + shrink * tr(S)/d * I."""
    f = f.astype(np.float64)
    mu = f.mean(0)
    s = np.cov(f.T, bias=True)
    d = s.shape[0]
    sigma = (1 - shrink) * s + shrink * np.trace(s) / d * np.eye(d)
    evals, evecs = np.linalg.eigh(sigma)
    return mu, evecs / np.sqrt(evals)[None, :]


def mahalanobis(f: np.ndarray, mu: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance divided by the dimension."""
    z = (f.astype(np.float64) - mu) @ w
    return (z**2).sum(1) / f.shape[1]


def image_signals(u8_nhwc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """luma mean and sharpness of uint8 views, as the graph computes them (a cross-check of the graph)."""
    x = u8_nhwc.astype(np.float32) / 255.0
    y = x @ np.asarray(LUMA, np.float32)
    lap = y[:, :-2, 1:-1] + y[:, 2:, 1:-1] + y[:, 1:-1, :-2] + y[:, 1:-1, 2:] - 4 * y[:, 1:-1, 1:-1]
    return y.mean((1, 2)), (lap**2).mean((1, 2))


def graft(model, fits: list[tuple[np.ndarray, np.ndarray, float]]):
    """Adds the ``refusal`` output to the shipped graph (the logits are untouched). ``fits``: per stage
    (mean, whitening matrix, validation normaliser)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    names = {o for n in g.node for o in n.output}
    for needed in [*STAGES, UNNORMALISED]:
        if needed not in names:
            raise SystemExit(f"the graph has no tensor {needed!r}: not a graph this script knows")
    if any(o.name == OUTPUT for o in g.output):
        raise SystemExit(f"the graph already has an output {OUTPUT!r}")
    f32 = lambda a, name: numpy_helper.from_array(np.asarray(a, np.float32), name)  # noqa: E731
    init = [
        f32(np.reshape(LUMA, (1, 3, 1, 1)), "refusal.luma_weights"),
        f32(np.reshape(LAPLACIAN, (1, 1, 3, 3)), "refusal.laplacian"),
        numpy_helper.from_array(np.asarray([1], np.int64), "refusal.axis1"),
    ]
    nodes = []
    scores = []
    for i, (name, (mu, w, norm)) in enumerate(zip(STAGES, fits)):
        p = f"refusal/stage{i}"
        init += [
            f32(mu, f"refusal.stage{i}.mean"),
            f32(w, f"refusal.stage{i}.whiten"),
            f32(1.0 / (w.shape[0] * norm), f"refusal.stage{i}.scale"),
        ]
        nodes += [
            helper.make_node("ReduceMean", [name], [f"{p}/m4"], axes=[2, 3], keepdims=1),
            helper.make_node("Sub", [name, f"{p}/m4"], [f"{p}/dev"]),
            helper.make_node("Mul", [f"{p}/dev", f"{p}/dev"], [f"{p}/dev2"]),
            helper.make_node("ReduceMean", [f"{p}/dev2"], [f"{p}/var"], axes=[2, 3], keepdims=0),
            helper.make_node("Sqrt", [f"{p}/var"], [f"{p}/sd"]),
            helper.make_node("ReduceMean", [name], [f"{p}/m"], axes=[2, 3], keepdims=0),
            helper.make_node("Concat", [f"{p}/m", f"{p}/sd"], [f"{p}/f"], axis=1),
            helper.make_node("Sub", [f"{p}/f", f"refusal.stage{i}.mean"], [f"{p}/x"]),
            helper.make_node("MatMul", [f"{p}/x", f"refusal.stage{i}.whiten"], [f"{p}/z"]),
            helper.make_node("Mul", [f"{p}/z", f"{p}/z"], [f"{p}/z2"]),
            helper.make_node("ReduceSum", [f"{p}/z2", "refusal.axis1"], [f"{p}/d2"], keepdims=1),
            helper.make_node("Mul", [f"{p}/d2", f"refusal.stage{i}.scale"], [f"{p}/score"]),
        ]
        scores.append(f"{p}/score")
    nodes += [
        helper.make_node("Concat", scores, ["refusal/scores"], axis=1),
        helper.make_node("ReduceMax", ["refusal/scores"], ["refusal/ood"], axes=[1], keepdims=1),
        # luma and sharpness of the model's view
        helper.make_node("Conv", [UNNORMALISED, "refusal.luma_weights"], ["refusal/y"]),
        helper.make_node("ReduceMean", ["refusal/y"], ["refusal/luma4"], axes=[2, 3], keepdims=0),
        helper.make_node("Conv", ["refusal/y", "refusal.laplacian"], ["refusal/lap"]),
        helper.make_node("Mul", ["refusal/lap", "refusal/lap"], ["refusal/lap2"]),
        helper.make_node("ReduceMean", ["refusal/lap2"], ["refusal/sharp4"], axes=[2, 3], keepdims=0),
        helper.make_node("Concat", ["refusal/ood", "refusal/luma4", "refusal/sharp4"], [OUTPUT], axis=1),
    ]
    g.initializer.extend(init)
    g.node.extend(nodes)
    g.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", len(SIGNALS)]))
    onnx.checker.check_model(model)
    return model


def run_graph(model_bytes: bytes, u8_nhwc: np.ndarray, mean, std, extra: list[str] | None = None, batch: int = 64,
              reduce=None):
    """All outputs (then the ``extra`` intermediate tensors, passed through ``reduce`` per batch) of a graph
    for uint8 views, with onnxruntime."""
    import onnxruntime as ort

    if extra:
        import onnx

        m = onnx.load_from_string(model_bytes)
        for name in extra:
            m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        model_bytes = m.SerializeToString()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    s = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    outs: list[list[np.ndarray]] = []
    for i in range(0, len(u8_nhwc), batch):
        x = ((u8_nhwc[i:i + batch].astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2)
        r = s.run(None, {"input": np.ascontiguousarray(x)})
        if reduce is not None and extra:
            k = len(r) - len(extra)
            r = r[:k] + [reduce(t) for t in r[k:]]
        outs.append(r)
    return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]


def load_views(data: Path, split_path: Path, size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from .data import load_records
    from .images import contract_uint8
    from .split import read_split

    split = read_split(split_path)
    recs = load_records(data)
    out = {}
    for name in ("train", "val", "test"):
        rs = [r for r in recs if split.get(r.image_id) == name]
        out[name] = (np.stack([contract_uint8(r.path, size) for r in rs]), np.array([r.label for r in rs]))
    return out


def fit_limits(val: dict[str, np.ndarray], q: dict[str, float]) -> dict[str, float]:
    return {
        "ood_max": float(np.quantile(val["ood"], 1 - q["ood"])),
        "luma_min": float(np.quantile(val["luma"], q["dark"])),
        "luma_max": float(np.quantile(val["luma"], 1 - q["bright"])),
        "sharpness_min": float(np.quantile(val["sharpness"], q["blur"])),
    }


def refused(sig: dict[str, np.ndarray], lim: dict[str, float]) -> np.ndarray:
    return (
        (sig["luma"] < lim["luma_min"]) | (sig["luma"] > lim["luma_max"])
        | (sig["sharpness"] < lim["sharpness_min"]) | (sig["ood"] > lim["ood_max"])
    )


PENULTIMATE = "/1/global_pool/flatten/Flatten_output_0"


def compare_scores(base: bytes, views: dict, pre: dict, set_dir: Path, shrink: float, q: float) -> list[dict]:
    """The method comparison of the model card: each score's share refused on the lesion test split and on
    each group of the refusal set, its limit at the validation split's quantile ``1 - q``."""
    import csv

    from .images import contract_uint8

    rows = list(csv.DictReader(open(set_dir / "manifest.csv")))
    size = views["train"][0].shape[1]
    u8 = {**{k: v[0] for k, v in views.items()},
          "set": np.stack([contract_uint8(set_dir / r["file"], size) for r in rows])}
    groups = np.array([r["group"] for r in rows])
    def reduce(t):
        return stage_statistics(t) if t.ndim == 4 else t

    out = {k: run_graph(base, u, pre["mean"], pre["std"], extra=[PENULTIMATE, *STAGES], reduce=reduce)
           for k, u in u8.items()}
    logits = {k: o[0] for k, o in out.items()}
    pooled = {k: o[1] for k, o in out.items()}
    stats = {k: list(o[2:]) for k, o in out.items()}

    # Mahalanobis of the pooled features: class means, one tied covariance.
    y = views["train"][1]
    f = pooled["train"].astype(np.float64)
    means = np.stack([f[y == c].mean(0) for c in range(int(y.max()) + 1)])
    _, w = fit_gaussian(f - means[y], shrink)
    def tied(k):
        z = pooled[k].astype(np.float64) @ w
        return (((z[:, None, :] - (means @ w)[None]) ** 2).sum(-1)).min(1)
    def energy(k):
        lg = logits[k].astype(np.float64)
        m = lg.max(1)
        return -(m + np.log(np.exp(lg - m[:, None]).sum(1)))
    def msp(k):
        e = np.exp(logits[k] - logits[k].max(1, keepdims=True))
        return -(e / e.sum(1, keepdims=True)).max(1)
    fits = [fit_gaussian(t, shrink) for t in stats["train"]]
    norms = [np.quantile(mahalanobis(stats["val"][i], *fits[i]), 0.99) for i in range(len(STAGES))]
    def staged(k):
        return np.max([mahalanobis(stats[k][i], *fits[i]) / norms[i] for i in range(len(STAGES))], 0)

    table = []
    for name, score in [("pooled last-layer features, tied Mahalanobis", tied), ("energy", energy),
                        ("maximum softmax probability", msp), ("feature statistics of all 8 stages (shipped)", staged)]:
        limit = np.quantile(score("val"), 1 - q)
        s_set = score("set")
        row = {"score": name, "lesion test split": float((score("test") > limit).mean())}
        row.update({g: float((s_set[groups == g] > limit).mean()) for g in sorted(set(groups))})
        table.append(row)
    return table


def main(argv: list[str] | None = None) -> None:
    import onnx

    from .card import sha256_file, validate_card, write_card

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="HAM10000 root")
    ap.add_argument("--card", type=Path, required=True, help="card of the shipped model; rewritten in place")
    ap.add_argument("--version", required=True, help="the card's new version (the ONNX file changes)")
    ap.add_argument("--split", type=Path, default=Path(__file__).resolve().parent.parent / "split.csv")
    ap.add_argument("--shrink", type=float, default=0.1, help="covariance shrinkage towards a multiple of I")
    ap.add_argument("--min-side", type=int, default=100, help="shortest side of a photo that can be judged")
    ap.add_argument("--q-ood", type=float, default=0.007, help="share of validation lesions above ood_max")
    ap.add_argument("--q-dark", type=float, default=0.001)
    ap.add_argument("--q-bright", type=float, default=0.001)
    ap.add_argument("--q-blur", type=float, default=0.002)
    ap.add_argument("--compare", type=Path, metavar="SET",
                    help="only print the model card's method comparison on this refusal set (writes nothing)")
    a = ap.parse_args(argv)

    card = json.loads(a.card.read_text())
    if a.compare:
        onnx_path = a.card.parent / card["onnx_file"]
        views = load_views(a.data, a.split, card["input"]["size"])
        for row in compare_scores(onnx_path.read_bytes(), views, card["preprocessing"], a.compare, a.shrink, a.q_ood):
            print(json.dumps(row))
        return
    if card.get("refusal"):
        raise SystemExit("the card already has a refusal section; start from the card and ONNX file without it")
    onnx_path = a.card.parent / card["onnx_file"]
    pre = card["preprocessing"]
    size = card["input"]["size"]
    views = load_views(a.data, a.split, size)
    base = onnx_path.read_bytes()

    outs = {name: run_graph(base, views[name][0], pre["mean"], pre["std"], extra=STAGES, reduce=stage_statistics)
            for name in ("train", "val")}
    fits = []
    for i in range(len(STAGES)):
        mu, w = fit_gaussian(outs["train"][1 + i], a.shrink)
        norm = float(np.quantile(mahalanobis(outs["val"][1 + i], mu, w), 0.99))
        fits.append((mu, w, norm))
    model = graft(onnx.load_from_string(base), fits)
    grafted = model.SerializeToString()

    signals = {}
    for name in ("val", "test"):
        u8, _ = views[name]
        logits, sig = run_graph(grafted, u8, pre["mean"], pre["std"])
        luma, sharp = image_signals(u8)
        assert np.allclose(sig[:, 1], luma, atol=1e-4) and np.allclose(sig[:, 2], sharp, rtol=1e-3, atol=1e-7), \
            "the graph's luma/sharpness disagree with numpy"
        signals[name] = {k: sig[:, i] for i, k in enumerate(SIGNALS)}
    q = {"ood": a.q_ood, "dark": a.q_dark, "bright": a.q_bright, "blur": a.q_blur}
    lim = fit_limits(signals["val"], q)
    rates = {name: float(refused(signals[name], lim).mean()) for name in ("val", "test")}
    print(json.dumps({"limits": lim, "false_refusal": rates}, indent=1))

    onnx.save(model, onnx_path)
    card["version"] = a.version
    card["onnx_sha256"] = sha256_file(onnx_path)
    card["refusal"] = {
        "output": OUTPUT,
        "signals": SIGNALS,
        "min_side": a.min_side,
        **{k: round(v, 6) if k != "sharpness_min" else float(f"{v:.6g}") for k, v in lim.items()},
        "fitted": {
            "by": "python -m mole_train.refusal " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in
                [("shrink", a.shrink), ("min_side", a.min_side), ("q_ood", a.q_ood), ("q_dark", a.q_dark),
                 ("q_bright", a.q_bright), ("q_blur", a.q_blur)]),
            "method": "ood: at the colour-corrected input and each of the 7 block stages, the per-channel mean and "
                      "standard deviation over the image; squared Mahalanobis distance to the train split's mean "
                      "(covariance shrunk towards a multiple of I) divided by the dimension and by its validation "
                      "99th percentile; the largest of the 8. luma: mean Rec. 601 luma of the model's view; "
                      "sharpness: mean squared 4-neighbour Laplacian of that luma. Each limit is a quantile of the "
                      "validation split's lesion photos.",
            "stages": STAGES,
            "stage_normalisers": [round(f[2], 6) for f in fits],
            "quantiles": q,
            "shrink": a.shrink,
            "false_refusal_onnxruntime": {k: round(v, 4) for k, v in rates.items()},
        },
    }
    problems = validate_card(card, a.card.parent)
    if problems:
        raise SystemExit("card invalid: " + "; ".join(problems))
    write_card(card, a.card)
    print(f"wrote {onnx_path} and {a.card} ({card['name']} {a.version})")


if __name__ == "__main__":
    main()
