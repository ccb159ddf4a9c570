"""Train one model from scratch on the train split; evaluate on validation every epoch.

    python -m mole_train.train --data ../../shared/data/ham10000 --name base --epochs 30

Writes training/runs/<name>/ (weights, history, validation logits) and appends a row to
training/tuning.csv. The test split is never touched here.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
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
from .metrics import balanced_accuracy
from .model import build_model, count_flops, count_parameters
from .split import read_split

HERE = Path(__file__).resolve().parent.parent
RUNS = HERE / "runs"


def cache_path(name: str) -> Path:
    RUNS.mkdir(parents=True, exist_ok=True)
    return RUNS / f"cache-{name}.npy"


def load_frames(records, tag: str) -> np.ndarray:
    """All full frames as uint8 [N,3,150,200], cached in training/runs (never committed)."""
    p = cache_path(f"frames-{tag}-{len(records)}")
    if p.exists():
        return np.load(p)
    arr = np.stack([load_full_frame(r.path) for r in records])
    np.save(p, arr)
    return arr


def load_contract(records, size: int, tag: str) -> np.ndarray:
    """The preprocessing contract up to uint8 (crop + resize) for evaluation, cached per size."""
    p = cache_path(f"contract-{tag}-{size}-{len(records)}")
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


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="HAM10000 root (project or Kaggle layout)")
    ap.add_argument("--split", type=Path, default=HERE / "split.csv")
    ap.add_argument("--name", required=True)
    ap.add_argument("--arch", default="mnv3s")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.02)
    ap.add_argument("--dropout", type=float, default=0.2)
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
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    out = RUNS / a.name
    out.mkdir(parents=True, exist_ok=True)

    records = load_records(a.data)
    split = read_split(a.split)
    train = [r for r in records if split.get(r.image_id) == "train"]
    val = [r for r in records if split.get(r.image_id) == "val"]
    if a.limit:
        train, val = train[: a.limit], val[: a.limit]
    tag = "smoke" if a.limit else "full"
    t0 = time.time()
    frames = load_frames(train, f"train-{tag}")
    val_u8 = load_contract(val, a.size, f"val-{tag}")
    mean, std = channel_stats(frames)
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

    model = build_model(a.arch, len(CLASSES), a.width, a.dropout).to(memory_format=torch.channels_last)
    def ema_avg(avg: torch.Tensor, cur: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        # Warm-up of the decay: early on the average follows the model instead of dragging the random init.
        d = min(a.ema, (1.0 + float(n)) / (10.0 + float(n)))
        return avg * d + cur * (1.0 - d)

    ema = AveragedModel(model, avg_fn=ema_avg, use_buffers=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    steps_per_epoch = max(1, len(train) // a.batch)
    total = steps_per_epoch * a.epochs
    warm = steps_per_epoch

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    frames_t = torch.from_numpy(frames)
    y_train_t = torch.from_numpy(y_train)
    aug = AUGMENTATIONS[a.aug]
    history = []
    t_train = time.time()
    for epoch in range(1, a.epochs + 1):
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
        row = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "train_balanced_accuracy": balanced_accuracy(tt, tp, len(CLASSES)),
            "val_loss": val_loss,
            "val_weighted_loss": val_weighted,
            "val_balanced_accuracy": balanced_accuracy(y_val, val_logits.argmax(1), len(CLASSES)),
            "val_balanced_accuracy_raw_weights": balanced_accuracy(y_val, raw_logits.argmax(1), len(CLASSES)),
            "lr": opt.param_groups[0]["lr"],
            "elapsed_s": round(time.time() - t_train, 1),
        }
        history.append(row)
        print(json.dumps(row), flush=True)
        (out / "history.json").write_text(json.dumps(history, indent=1))
    train_s = time.time() - t_train
    torch.save(ema.module.state_dict(), out / "model.pt")
    np.save(out / "val_logits.npy", val_logits)
    last = [h["val_balanced_accuracy"] for h in history[-3:]]
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}
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
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if not a.no_tuning_row and not a.limit:
        append_tuning_row(summary)
    print(json.dumps(summary), flush=True)
    return summary


def append_tuning_row(s: dict) -> None:
    path = HERE / "tuning.csv"
    new = not path.exists()
    c = s["config"]
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["run", "arch", "width", "size", "lr", "aug", "balance", "epochs", "params", "mflops",
                        "train_min", "final_val_bal_acc", "last3_val_bal_acc"])
        w.writerow([s["name"], c["arch"], c["width"], c["size"], c["lr"], c["aug"], c["balance"], c["epochs"],
                    s["parameters"], round(s["flops_per_image"] / 1e6, 1), round(s["train_seconds"] / 60, 1),
                    round(s["final_val_balanced_accuracy"], 4), round(s["last3_val_balanced_accuracy"], 4)])


if __name__ == "__main__":
    main()
