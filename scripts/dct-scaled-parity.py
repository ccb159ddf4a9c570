"""Would a DCT-domain scaled decode of a large JPEG keep the model's answers? (issue 9, BENCHMARKS.md)

The contract decodes the whole photo and resizes its centre square with Pillow's BILINEAR filter. A JPEG
can instead be decoded at 1/2, 1/4 or 1/8 of its size in the DCT domain (libjpeg's scaled IDCT, which
Pillow's `draft` asks for), far faster. This compares the model's probabilities both ways on test-split
photos upscaled to 4032x3024 (JPEG q90, as the benchmarks make phone photos).

    .venv-test/bin/python scripts/dct-scaled-parity.py ../shared/data/ham10000/images N SCALE
"""
import csv, io, json, sys, time
import numpy as np, onnxruntime as ort
from PIL import Image

from pathlib import Path
root = str(Path(__file__).resolve().parent.parent)
images = sys.argv[1]
card = json.load(open(f"{root}/models/mole-v2.card.json"))
S = card["input"]["size"]; T = card["temperature"]
mean = np.array(card["preprocessing"]["mean"], np.float32).reshape(3, 1, 1)
std = np.array(card["preprocessing"]["std"], np.float32).reshape(3, 1, 1)
mal = np.array([c["malignant"] for c in card["classes"]])
sess = ort.InferenceSession(f"{root}/models/mole-v2.onnx", providers=["CPUExecutionProvider"])
inp = sess.get_inputs()[0].name

def view(im):
    w, h = im.size; s = min(w, h); l, t = (w - s) // 2, (h - s) // 2
    return im.crop((l, t, l + s, t + s)).resize((S, S), Image.BILINEAR)

def p_mal(im):
    x = (np.asarray(im, np.float32).transpose(2, 0, 1) / 255.0 - mean) / std
    z = sess.run(["logits"], {inp: x[None]})[0][0] / T
    p = np.exp(z - z.max()); p /= p.sum(); return float(p[mal].sum()), p

n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
SCALE = int(sys.argv[3]) if len(sys.argv) > 3 else 8
rows = [r for r in csv.DictReader(open(f"{root}/training/split.csv")) if r["split"] == "test"][:n]
diffs, maxcls, flips = [], [], 0
thr = card["threshold"]
t_full = t_draft = 0.0
for r in rows:
    src = Image.open(f"{images}/{r['image_id']}.jpg").convert("RGB")
    buf = io.BytesIO(); src.resize((4032, 3024), Image.BICUBIC).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    t0 = time.perf_counter(); full = view(Image.open(io.BytesIO(data)).convert("RGB")); t_full += time.perf_counter() - t0
    t0 = time.perf_counter(); d = Image.open(io.BytesIO(data)); d.draft("RGB", (4032 // SCALE, 3024 // SCALE)); fast = view(d.convert("RGB")); t_draft += time.perf_counter() - t0
    a, pa = p_mal(full); b, pb = p_mal(fast)
    diffs.append(abs(a - b)); maxcls.append(float(np.abs(pa - pb).max()))
    flips += (a >= thr) != (b >= thr)
d = np.array(diffs); m = np.array(maxcls)
print(f"scale 1/{SCALE} n={len(rows)} |dp_malignant| max {d.max():.4f} p99 {np.percentile(d,99):.4f} mean {d.mean():.4f}; "
      f"max |dp| any class {m.max():.4f}; verdicts changed {flips}; "
      f"ms per photo: full {1000*t_full/len(rows):.0f}, draft {1000*t_draft/len(rows):.0f}")
