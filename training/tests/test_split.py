import csv
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from mole_train import CLASSES
from mole_train.data import Record
from mole_train.split import KNOWN_DUPLICATES, assign_splits, group_images, read_split

HERE = Path(__file__).resolve().parent.parent
COMMITTED = HERE / "split.csv"


def synthetic(n_lesions=400):
    recs = []
    for i in range(n_lesions):
        dx = CLASSES[i % len(CLASSES)] if i % 3 else "nv"
        for k in range(1 + i % 3):
            recs.append(Record(f"IMG_{i}_{k}", f"L{i}", dx, Path(f"/x/{i}_{k}.jpg")))
    return recs


def test_no_lesion_is_on_two_sides_and_fractions_are_near_target():
    recs = synthetic()
    split = assign_splits(recs, group_images(recs, []), seed=1)
    sides = defaultdict(set)
    for r in recs:
        sides[r.lesion_id].add(split[r.image_id])
    assert all(len(s) == 1 for s in sides.values())
    c = Counter(split.values())
    assert abs(c["train"] / len(recs) - 0.70) < 0.03
    assert abs(c["val"] / len(recs) - 0.15) < 0.03


def test_duplicates_across_lesions_and_identical_bytes_stay_together():
    recs = synthetic(50) + [Record("DUP_A", "LA", "mel", Path("a")), Record("DUP_B", "LB", "mel", Path("b")),
                            Record("SAME_1", "LC", "bcc", Path("c")), Record("SAME_2", "LD", "bcc", Path("d"))]
    groups = group_images(recs, [("DUP_A", "DUP_B")], {"SAME_1": "h", "SAME_2": "h", "DUP_A": "x"})
    assert groups["DUP_A"] == groups["DUP_B"]
    assert groups["SAME_1"] == groups["SAME_2"]
    for seed in range(5):
        split = assign_splits(recs, groups, seed=seed)
        assert split["DUP_A"] == split["DUP_B"]
        assert split["SAME_1"] == split["SAME_2"]


def test_the_split_is_deterministic_for_a_seed():
    recs = synthetic()
    g = group_images(recs, [])
    assert assign_splits(recs, g, seed=3) == assign_splits(recs, g, seed=3)
    assert assign_splits(recs, g, seed=3) != assign_splits(recs, g, seed=4)


def test_committed_split_is_lesion_grouped_and_stratified():
    split = read_split(COMMITTED)
    assert len(split) == 10015
    meta = Path(__file__).resolve().parents[3] / "shared" / "data" / "ham10000" / "metadata.csv"
    if not meta.exists():
        pytest.skip("HAM10000 metadata not beside the checkout")
    with open(meta, newline="") as f:
        rows = list(csv.DictReader(f))
    sides = defaultdict(set)
    per_class = defaultdict(Counter)
    for r in rows:
        sides[r["lesion_id"]].add(split[r["image_id"]])
        per_class[r["dx"]][split[r["image_id"]]] += 1
    assert all(len(s) == 1 for s in sides.values()), "a lesion crosses splits"
    for a, b in KNOWN_DUPLICATES:
        assert split[a] == split[b]
    for dx, c in per_class.items():
        total = sum(c.values())
        assert abs(c["test"] / total - 0.15) < 0.03, dx
        assert abs(c["val"] / total - 0.15) < 0.03, dx
