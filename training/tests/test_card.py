import json
from pathlib import Path

from mole_train import CLASSES
from mole_train.card import build_card, sha256_file, validate_card

REPO = Path(__file__).resolve().parents[2]


def make(tmp_path, **over):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not really onnx but hashed all the same")
    kw = dict(name="t", version="0", onnx_path=onnx, size=128, mean=[0.5] * 3, std=[0.2] * 3, temperature=1.3,
              threshold=0.3, architecture={}, training={}, metrics={})
    kw.update(over)
    return build_card(**kw), onnx


def test_a_fresh_card_is_valid_and_records_the_onnx_hash(tmp_path):
    card, onnx = make(tmp_path)
    assert validate_card(card, tmp_path) == []
    assert card["onnx_sha256"] == sha256_file(onnx)
    assert [c["code"] for c in card["classes"]] == CLASSES
    assert card["malignant_classes"] == ["akiec", "bcc", "mel"]


def test_a_changed_onnx_file_is_caught(tmp_path):
    card, onnx = make(tmp_path)
    onnx.write_bytes(b"tampered")
    assert any("sha256" in p for p in validate_card(card, tmp_path))


def test_bad_temperature_threshold_and_missing_fields_are_reported(tmp_path):
    card, _ = make(tmp_path, temperature=0.0, threshold=1.5)
    probs = validate_card(card)
    assert any("temperature" in p for p in probs) and any("threshold" in p for p in probs)
    del card["classes"]
    assert validate_card(card) == ["missing field 'classes'"]


def test_the_shipped_card_is_valid_and_meets_its_own_bars():
    cards = sorted((REPO / "models").glob("*.card.json"))
    assert cards, "no model card in models/"
    for path in cards:
        card = json.loads(path.read_text())
        assert validate_card(card, path.parent) == []
        t = card["metrics"]["test"]
        assert t["n"] > 1000
        assert 0.0 < t["balanced_accuracy"] <= 1.0
