"""Reading HAM10000 in either layout, without copying anything into the repository.

Layouts accepted (the path given on the command line is the root):
- the project's: ``metadata.csv`` + ``images/<image_id>.jpg``;
- Kaggle's original: ``HAM10000_metadata.csv`` + ``HAM10000_images_part_1/`` and ``HAM10000_images_part_2/``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from . import CLASSES


@dataclass(frozen=True)
class Record:
    image_id: str
    lesion_id: str
    dx: str
    path: Path

    @property
    def label(self) -> int:
        return CLASSES.index(self.dx)


def find_metadata(root: Path) -> Path:
    for name in ("metadata.csv", "HAM10000_metadata.csv", "HAM10000_metadata"):
        p = root / name
        if p.is_file():
            return p
    raise FileNotFoundError(f"no metadata.csv or HAM10000_metadata.csv under {root}")


def image_dirs(root: Path) -> list[Path]:
    dirs = [root / "images", root / "HAM10000_images_part_1", root / "HAM10000_images_part_2", root]
    return [d for d in dirs if d.is_dir()]


def read_metadata(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for col in ("lesion_id", "image_id", "dx"):
        if rows and col not in rows[0]:
            raise ValueError(f"{path}: missing column {col!r}")
    return rows


def load_records(root: Path, require_images: bool = True) -> list[Record]:
    """All records of the data set, with the path of each image.

    An image listed in the metadata but missing on disk is an error when ``require_images``: a silently
    smaller data set would make every figure downstream a different experiment.
    """
    root = Path(root)
    rows = read_metadata(find_metadata(root))
    dirs = image_dirs(root)
    out: list[Record] = []
    missing: list[str] = []
    for r in rows:
        dx = r["dx"].strip()
        if dx not in CLASSES:
            raise ValueError(f"unknown dx {dx!r} for {r['image_id']}")
        path = None
        for d in dirs:
            for ext in (".jpg", ".jpeg", ".png"):
                p = d / f"{r['image_id']}{ext}"
                if p.is_file():
                    path = p
                    break
            if path:
                break
        if path is None:
            missing.append(r["image_id"])
            path = dirs[0] / f"{r['image_id']}.jpg" if dirs else root / f"{r['image_id']}.jpg"
        out.append(Record(r["image_id"].strip(), r["lesion_id"].strip(), dx, path))
    if require_images and missing:
        raise FileNotFoundError(f"{len(missing)} images listed in the metadata are missing, e.g. {missing[:3]}")
    return out
