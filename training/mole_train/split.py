"""Lesion-grouped, stratified train/val/test split.

No lesion and no duplicate photo may sit on two sides. Images are grouped by ``lesion_id``; groups are then
merged (union-find) when two images are byte-identical or listed as known duplicates across lesions
(HAM10000's SOURCE.md names ISIC_0025226 / ISIC_0030074: one photo under two lesion ids). Groups are assigned
per class so that each class is split about 70/15/15 by image count, with a fixed seed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
from collections import defaultdict
from pathlib import Path

from . import CLASSES
from .data import Record, load_records

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)
# Visibly the same photo under two lesion ids (data set SOURCE.md). Byte-identical pairs are found by hashing.
KNOWN_DUPLICATES = [("ISIC_0025226", "ISIC_0030074")]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def group_images(
    records: list[Record], duplicates: list[tuple[str, str]], content_hashes: dict[str, str] | None = None
) -> dict[str, str]:
    """image_id -> group key. Images share a group when they share a lesion, a known duplicate or bytes."""
    uf = _UnionFind()
    by_lesion: dict[str, str] = {}
    for r in records:
        uf.find(r.image_id)
        first = by_lesion.setdefault(r.lesion_id, r.image_id)
        uf.union(first, r.image_id)
    ids = {r.image_id for r in records}
    for a, b in duplicates:
        if a in ids and b in ids:
            uf.union(a, b)
    if content_hashes:
        by_hash: dict[str, str] = {}
        for image_id, h in content_hashes.items():
            first = by_hash.setdefault(h, image_id)
            uf.union(first, image_id)
    return {r.image_id: uf.find(r.image_id) for r in records}


def assign_splits(
    records: list[Record],
    groups: dict[str, str],
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    seed: int = 20261127,
) -> dict[str, str]:
    """image_id -> split name, stratified by class, whole groups at a time."""
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError("fractions must sum to 1")
    label_of_group: dict[str, str] = {}
    members: dict[str, list[str]] = defaultdict(list)
    for r in records:
        g = groups[r.image_id]
        members[g].append(r.image_id)
        # A merged group may mix labels (not in HAM10000, but possible for a duplicate across classes);
        # stratify it by its most common label.
        label_of_group.setdefault(g, r.dx)
    rng = random.Random(seed)
    out: dict[str, str] = {}
    for dx in CLASSES:
        gs = sorted(g for g, lab in label_of_group.items() if lab == dx)
        rng.shuffle(gs)
        # Larger groups first so that the small ones can even out the counts at the end.
        gs.sort(key=lambda g: -len(members[g]))
        total = sum(len(members[g]) for g in gs)
        filled = [0, 0, 0]
        for g in gs:
            n = len(members[g])
            # The split with the largest deficit against its target takes the group.
            deficits = [fractions[i] * total - filled[i] for i in range(3)]
            i = max(range(3), key=lambda k: (deficits[k], -k))
            filled[i] += n
            for image_id in members[g]:
                out[image_id] = SPLITS[i]
    return out


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_split(root: Path, seed: int = 20261127) -> tuple[list[Record], dict[str, str]]:
    records = load_records(root)
    hashes = {r.image_id: file_sha256(r.path) for r in records}
    groups = group_images(records, KNOWN_DUPLICATES, hashes)
    return records, assign_splits(records, groups, seed=seed)


def write_split(path: Path, split: dict[str, str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "split"])
        for image_id in sorted(split):
            w.writerow([image_id, split[image_id]])


def read_split(path: Path) -> dict[str, str]:
    with open(path, newline="") as f:
        return {row["image_id"]: row["split"] for row in csv.DictReader(f)}


def main() -> None:
    ap = argparse.ArgumentParser(description="Write the lesion-grouped stratified split CSV.")
    ap.add_argument("--data", type=Path, required=True, help="HAM10000 root (either layout)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "split.csv")
    ap.add_argument("--seed", type=int, default=20261127)
    a = ap.parse_args()
    records, split = make_split(a.data, a.seed)
    write_split(a.out, split)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for r in records:
        counts[(r.dx, split[r.image_id])] += 1
    print(f"{'dx':6} " + " ".join(f"{s:>6}" for s in SPLITS))
    for dx in CLASSES:
        print(f"{dx:6} " + " ".join(f"{counts[(dx, s)]:6d}" for s in SPLITS))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
