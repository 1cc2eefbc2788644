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
    assert str(tmp_path / "hub" / "checkpoints") in str(exc.value) and exc.value.retryable


def test_bad_input_names_the_argument(tmp_path):
    with pytest.raises(InvalidInputError, match="backbone: expected one of"):
        get_backbone("resnet51", weights=None)
    with pytest.raises(InvalidInputError, match="weights: expected an existing state_dict file"):
        get_backbone("small_cnn", weights=tmp_path / "missing.pt")
    with pytest.raises(InvalidInputError, match=r"weights: .*IMAGENET1K_V1"):
        get_backbone("resnet18", weights="IMAGENET")
    with pytest.raises(InvalidInputError, match="has no pretrained download"):
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
