"""The simple alternative mole is measured against (issue 9, BENCHMARKS.md "Throughput at saturation").

What a clinic might deploy instead of mole: a FastAPI app that takes a photo, runs the same ONNX model
synchronously with onnxruntime (one intra-op thread per process, as many processes as cores) and answers
with the probabilities. It keeps nothing: no database, no queue, no audit, no live page. Same model card,
same preprocessing contract as mole (decode with EXIF orientation -> RGB -> centre square -> Pillow
BILINEAR resize -> (x/255 - mean)/std), so the two do the same work per photo.

Run (from the repository root):
    scripts/reference-app/venv.sh            # makes scripts/reference-app/.venv with the pinned packages
    MOLE_MODEL=models/mole-v2.card.json scripts/reference-app/.venv/bin/uvicorn --app-dir scripts/reference-app \
        app:app --host 127.0.0.1 --port 18090 --workers 2 --log-level warning

POST /predict (multipart field `photo`) -> {"verdict", "p_malignant", "classes": [...]}
"""

import io
import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, File, HTTPException, UploadFile
from PIL import Image, ImageOps, UnidentifiedImageError

CARD_PATH = Path(os.environ.get("MOLE_MODEL", "models/mole-v2.card.json"))
CARD = json.loads(CARD_PATH.read_text())
SIZE = int(CARD["input"]["size"])
MEAN = np.array(CARD["preprocessing"]["mean"], dtype=np.float32).reshape(3, 1, 1)
STD = np.array(CARD["preprocessing"]["std"], dtype=np.float32).reshape(3, 1, 1)
SCALE = float(CARD["preprocessing"].get("scale", 255.0))
TEMPERATURE = float(CARD["temperature"])
THRESHOLD = float(CARD["threshold"])
CLASSES = CARD["classes"]
MALIGNANT = np.array([c["malignant"] for c in CLASSES])

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
SESSION = ort.InferenceSession(
    str(CARD_PATH.parent / CARD["onnx_file"]), options, providers=["CPUExecutionProvider"]
)
INPUT = SESSION.get_inputs()[0].name
LOGITS = CARD["output"]["name"]
# Pillow refuses images above this many pixels (a decompression-bomb guard, like mole's).
Image.MAX_IMAGE_PIXELS = 50_000_000

app = FastAPI()


def tensor(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    image = ImageOps.exif_transpose(image).convert("RGB")
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((SIZE, SIZE), Image.BILINEAR)
    x = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / SCALE
    return ((x - MEAN) / STD)[None]


@app.post("/predict")
def predict(photo: UploadFile = File(...)):
    # A plain `def`: FastAPI runs it in its thread pool, one forward pass at a time per process.
    data = photo.file.read()
    try:
        x = tensor(data)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise HTTPException(status_code=415, detail=f"not an image: {e}") from None
    logits = SESSION.run([LOGITS], {INPUT: x})[0][0] / TEMPERATURE
    p = np.exp(logits - logits.max())
    p /= p.sum()
    p_malignant = float(p[MALIGNANT].sum())
    return {
        "status": "done",
        "verdict": "see_a_doctor" if p_malignant >= THRESHOLD else "looks_benign",
        "p_malignant": p_malignant,
        "classes": [{"code": c["code"], "probability": float(q)} for c, q in zip(CLASSES, p)],
    }


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
