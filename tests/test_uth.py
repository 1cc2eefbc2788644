"""UTH: losses against hand-computed values, training that lowers each loss and balances bits,
deterministic encoding, save/load without pickle, resume, bad input, the CLI into Milvus Lite."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ingestion.cli import cli
from milvus_hash.codes import unpack_bits
from milvus_hash.encoders import encoder_kind, load_encoder
from milvus_hash.encoders.uth import UTHEncoder, entropy_loss, quantization_loss, triplet_loss, uth_loss
from milvus_hash.encoders.uth.model import rotate
from milvus_hash.encoders.uth.training import TrainSettings, latest_checkpoint, load_checkpoint
from milvus_hash.errors import InvalidInputError

pytestmark = pytest.mark.unit
FAST = dict(backbone="small_cnn", weights=None, stage1_epochs=1, stage2_epochs=1, lr=0.01, stage2_lr=0.01,
            schedule="cosine", alpha=0.1, batch_size=64, workers=0, device="cpu", progress=False)


@pytest.fixture(scope="module")
def digits28():
    """scikit-learn's 1,797 real digit images, upscaled to 28x28 uint8."""
    from sklearn.datasets import load_digits

    d = load_digits()
    ims = np.stack([np.asarray(Image.fromarray((im * 16).clip(0, 255).astype(np.uint8)).resize((28, 28)))
                    for im in d.images])
    return ims, d.target


@pytest.fixture(scope="module")
def trained(digits28):
    X, _ = digits28
    return UTHEncoder(16, **FAST, random_state=0).fit(X)


# -- losses -------------------------------------------------------------------------------------------

def test_losses_equal_hand_computed_values():
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    p = torch.tensor([[3.0, 4.0], [0.0, 1.0]])  # distances 5 and 1
    n = torch.tensor([[0.0, 1.0], [3.0, 4.0]])  # distances 1 and 5
    # max(0, 5 - 1 + 1) = 5 and max(0, 1 - 5 + 1) = 0: mean 2.5
    assert triplet_loss(a, p, n, margin=1.0).item() == pytest.approx(2.5)
    assert triplet_loss(a, p, n, margin=5.0).item() == pytest.approx((9 + 1) / 2)
    h = torch.tensor([[0.2, 0.7], [0.5, 1.5]])  # codes [[0, 1], [1, 1]]
    assert quantization_loss(h).item() == pytest.approx((0.04 + 0.09 + 0.25 + 0.25) / 4)
    # bit means 0.35 and 1.1: (0.35 - 0.5)^2 + (1.1 - 0.5)^2
    assert entropy_loss(h).item() == pytest.approx(0.0225 + 0.36)
    parts = uth_loss(h, h + 0.1, h.flip(0), alpha=0.5, beta=2.0, margin=1.0)
    d_pos = np.sqrt(0.02)
    d_neg = np.linalg.norm(np.array([[0.2, 0.7], [0.5, 1.5]]) - np.array([[0.5, 1.5], [0.2, 0.7]]), axis=1)
    trip = np.maximum(0, d_pos - d_neg + 1.0).mean()
    assert parts["triplet"].item() == pytest.approx(trip, rel=1e-5)
    assert parts["total"].item() == pytest.approx(trip + 0.5 * 0.1575 + 2.0 * 0.3825, rel=1e-5)
    stage1 = uth_loss(h, alpha=0.5, beta=2.0)
    assert stage1["triplet"].item() == 0.0 and stage1["total"].item() == pytest.approx(0.5 * 0.1575 + 2 * 0.3825)


def test_loss_gradients_push_outputs_to_the_nearest_bit_and_bits_to_balance():
    h = torch.tensor([[0.2, 0.7], [0.4, 0.9]], requires_grad=True)
    quantization_loss(h).backward()
    # d/dh mean (h - b)^2 = 2 (h - b) / 4: towards 0 below 0.5, towards 1 above (b is a constant)
    assert torch.allclose(h.grad, torch.tensor([[0.1, -0.15], [0.2, -0.05]]))
    h.grad = None
    entropy_loss(h).backward()
    # bit means 0.3 and 0.8: each row gets 2 (mean - 0.5) / n
    assert torch.allclose(h.grad, torch.tensor([[-0.2, 0.3], [-0.2, 0.3]]))


def test_losses_reject_bad_shapes():
    with pytest.raises(InvalidInputError, match="anchor"):
        triplet_loss(torch.zeros(3), torch.zeros(3), torch.zeros(3))
    with pytest.raises(InvalidInputError, match="positive, negative"):
        triplet_loss(torch.zeros(2, 4), torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(InvalidInputError, match="both or neither"):
        uth_loss(torch.zeros(2, 4), torch.zeros(2, 4))


def test_rotation_moves_pixels_about_the_centre_and_fills_black():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 0, 2] = 1.0  # top middle
    out = rotate(x, torch.tensor([90.0]), fill=torch.tensor([-1.0]))
    assert torch.allclose(rotate(x, torch.tensor([0.0]), fill=torch.tensor([-1.0])), x, atol=1e-6)
    # 90 degrees (counter-clockwise on screen) moves the top-middle pixel to the middle of a side
    assert out[0, 0, 2, 0].item() == pytest.approx(1.0, abs=1e-5) or out[0, 0, 2, 4].item() == pytest.approx(1.0, abs=1e-5)
    assert out[0, 0, 2, 2].item() == pytest.approx(0.0, abs=1e-6)
    corner = rotate(torch.zeros(1, 1, 8, 8), torch.tensor([45.0]), fill=torch.tensor([-1.0]))[0, 0, 0, 0]
    assert corner.item() == pytest.approx(-1.0, abs=1e-5)


# -- training -----------------------------------------------------------------------------------------

def _losses(net, x, gen):
    """All three losses on fixed images, fixed rotations and fixed negatives (batch statistics)."""
    net = copy.deepcopy(net).train()
    with torch.no_grad():
        angles = torch.tensor([-10.0, -5.0, 5.0, 10.0])[torch.randint(4, (len(x),), generator=gen)]
        h = net(torch.cat([x, rotate(x, angles, fill=torch.tensor([-0.286 / 0.353]))]))
        a, p = h[:len(x)], h[len(x):]
        return {k: float(v) for k, v in uth_loss(a, p, a.roll(1, 0), alpha=1, beta=1, margin=1).items()}


def test_short_training_lowers_each_loss_and_balances_bits(digits28):
    X, _ = digits28
    enc = UTHEncoder(16, **{**FAST, "stage1_epochs": 2, "stage2_epochs": 3, "alpha": 1.0}, random_state=1)
    initial = enc._build(None)  # the network fit starts from (same seed)
    xt = enc._array_tensor(X[:512])
    loss0 = _losses(initial, xt, torch.Generator().manual_seed(0))
    enc.fit(X)
    loss1 = _losses(enc.net_, xt, torch.Generator().manual_seed(0))
    for k in ("triplet", "quantization", "entropy", "total"):
        assert loss1[k] < loss0[k], (k, loss0, loss1)
    assert [h["stage"] for h in enc.history_] == [1, 1, 2, 2, 2]
    bits = unpack_bits(enc.transform(X))
    balance = np.abs(bits.mean(0) - 0.5)
    assert balance.mean() < 0.15 and balance.max() < 0.4, balance
    assert len(np.unique(enc.transform(X), axis=0)) > 200  # not collapsed to a few codes


def test_similar_images_get_closer_codes_than_random_ones(trained, digits28):
    X, y = digits28
    bits = unpack_bits(trained.transform(X)).astype(np.int32)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(X), 2000), rng.integers(0, len(X), 2000)
    same, diff = y[i] == y[j], y[i] != y[j]
    d = np.abs(bits[i] - bits[j]).sum(1)
    assert d[same].mean() < d[diff].mean()
    rot = np.stack([np.asarray(Image.fromarray(im).rotate(5)) for im in X[:300]])
    d_rot = np.abs(unpack_bits(trained.transform(rot)).astype(np.int32) - bits[:300]).sum(1)
    assert d_rot.mean() < d[diff].mean()


def test_encoding_is_deterministic_and_survives_save_and_load(trained, digits28, tmp_path):
    X, _ = digits28
    codes = trained.transform(X[:300])
    assert codes.dtype == np.uint8 and codes.shape == (300, 2)
    assert np.array_equal(trained.transform(X[:300]), codes)
    assert np.array_equal(trained.transform(X[:300][::-1]), codes[::-1])  # batch composition does not matter
    path = trained.save(tmp_path / "uth.pt")
    raw = torch.load(path, weights_only=True)  # tensors, numbers and JSON only: no pickle
    assert raw["kind"] == "uth" and json.loads(raw["meta"])["params"]["n_bits"] == 16
    assert encoder_kind(path) == "uth"
    loaded = load_encoder(path, device="cpu")
    assert isinstance(loaded, UTHEncoder)
    assert loaded.encoder_spec() == trained.encoder_spec() and loaded.encoder_spec().kind == "uth"
    assert np.array_equal(loaded.transform(X[:300]), codes)
    pil = [Image.fromarray(im) for im in X[:40]]  # PIL images go through the backbone's transform
    assert np.array_equal(loaded.transform(pil), codes[:40])
    big = [im.resize((56, 56)) for im in pil]  # any size: the transform resizes
    assert loaded.transform(big).shape == (40, 2)


def test_same_seed_same_network_and_a_resumed_run_ends_where_an_uninterrupted_one_does(digits28, tmp_path):
    X = digits28[0][:600]
    ref = UTHEncoder(16, **FAST, random_state=3).fit(X)
    assert UTHEncoder(16, **FAST, random_state=3).fit(X).encoder_spec() == ref.encoder_spec()
    assert UTHEncoder(16, **FAST, random_state=4).fit(X).encoder_spec() != ref.encoder_spec()

    def crash_after_first_epoch(msg):
        if msg.startswith("epoch 2/"):
            raise KeyboardInterrupt

    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        UTHEncoder(16, **FAST, random_state=3, checkpoint_dir=ckpt).fit(X, log=crash_after_first_epoch)
    assert latest_checkpoint(ckpt).name == "epoch-0001.pt"
    assert load_checkpoint(ckpt / "epoch-0001.pt")["epoch"] == 1
    lines = []
    resumed = UTHEncoder(16, **FAST, random_state=3, checkpoint_dir=ckpt, resume=True).fit(X, log=lines.append)
    assert any(line.startswith("resumed from") for line in lines) and len(resumed.history_) == 2
    assert resumed.encoder_spec() == ref.encoder_spec()
    assert np.array_equal(resumed.transform(X), ref.transform(X))
    with pytest.raises(InvalidInputError, match="same network and settings"):
        UTHEncoder(16, **{**FAST, "alpha": 0.5}, random_state=3, checkpoint_dir=ckpt, resume=True).fit(X)


def test_bad_input_gives_clear_errors(trained, digits28, tmp_path):
    X, _ = digits28
    with pytest.raises(InvalidInputError, match=r"images.*1 channel of 28x28.*\(10, 28, 28, 3\)"):
        trained.transform(np.zeros((10, 28, 28, 3), np.uint8))
    with pytest.raises(InvalidInputError, match=r"images.*\(10, 32, 32\)"):
        trained.transform(np.zeros((10, 32, 32), np.uint8))
    with pytest.raises(InvalidInputError, match="images.*uint8.*float"):
        trained.transform(np.zeros((10, 28, 28), np.float32))
    with pytest.raises(InvalidInputError, match="images.*at least one"):
        trained.transform([])
    with pytest.raises(InvalidInputError, match="n_bits.*multiple of 8.*12"):
        UTHEncoder(12, **FAST).fit(X[:100])
    with pytest.raises(InvalidInputError, match="activation"):
        UTHEncoder(16, **{**FAST, "activation": "tanh"}).fit(X[:100])
    with pytest.raises(InvalidInputError, match="backbone.*CNN.*'pixels'"):
        UTHEncoder(16, **{**FAST, "backbone": "pixels"}).fit(X[:100])
    with pytest.raises(InvalidInputError, match="rotations"):
        UTHEncoder(16, **{**FAST, "rotations": (0,)}).fit(X[:100])
    with pytest.raises(InvalidInputError, match="batch_size"):
        TrainSettings(batch_size=1)
    with pytest.raises(InvalidInputError, match="checkpoint.*no file"):
        load_checkpoint(tmp_path / "missing" / "epoch-0003.pt")
    with pytest.raises(InvalidInputError, match="encoder.*no file"):
        UTHEncoder.load(tmp_path / "missing.pt")
    with pytest.raises(InvalidInputError, match="resume.*checkpoint_dir"):
        UTHEncoder(16, **FAST, resume=True).fit(X[:100])
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidInputError, match="encoder"):
        UTHEncoder.load(tmp_path / "bad.pt")
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        UTHEncoder(16, **FAST).transform(X[:10])


# -- CLI into Milvus Lite ------------------------------------------------------------------------------

@pytest.mark.lite
def test_cli_train_uth_then_ingest_and_search_by_image(digits28, tmp_path):
    X, y = digits28
    root = tmp_path / "imgs"
    for c in range(10):
        (root / str(c)).mkdir(parents=True)
        for i in np.flatnonzero(y == c)[:30]:
            Image.fromarray(X[i]).save(root / str(c) / f"{i:04d}.png")
    (root / "3" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out, db = tmp_path / "uth.pt", tmp_path / "m.db"
    run = CliRunner().invoke
    res = run(cli, ["train-uth", str(root), "--out", str(out), "--bits", "16", "--backbone", "small_cnn",
                    "--weights", "none", "--stage1-epochs", "1", "--stage2-epochs", "1", "--lr", "0.01",
                    "--stage2-lr", "0.01", "--batch-size", "32", "--workers", "0", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "trained UTH (16 bits, small_cnn) on 300 images" in res.output and "epoch 2/2 (stage 2)" in res.output
    assert (tmp_path / "uth.pt.checkpoints" / "epoch-0002.pt").is_file()
    res = run(cli, ["ingest", str(root), "--collection", "u", "--encoder", str(out), "--uri", str(db),
                    "--workers", "0", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "ingested 300" in res.output and "failed 1" in res.output
    res = run(cli, ["info", "--uri", str(db), "--json"])
    info = json.loads(res.output)
    assert "uth" in json.dumps(info)
    query = root / "7" / sorted(p.name for p in (root / "7").iterdir())[0]
    res = run(cli, ["search", "--collection", "u", "--image", str(query), "--encoder", str(out), "--uri", str(db),
                    "-k", "300", "--json"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.output)["hits"]
    assert hits[0]["distance"] == 0 and any(h["source"].endswith(query.name) and h["distance"] == 0 for h in hits)
    enc = load_encoder(out, device="cpu")
    expected = enc.transform(np.stack([np.asarray(Image.open(query))]))
    dists = [h["distance"] for h in hits]
    assert dists == sorted(dists) and len(hits) == 300
    assert expected.shape == (1, 2)
    # the UTH network is its own backbone: a clashing flag is a usage error
    res = run(cli, ["ingest", str(root), "--collection", "u", "--encoder", str(out), "--uri", str(db),
                    "--backbone", "resnet18"])
    assert res.exit_code == 2 and "clash" in res.output
    # resume after the run: nothing left to train, the same encoder
    res = run(cli, ["train-uth", str(root), "--out", str(tmp_path / "again.pt"), "--bits", "16", "--backbone",
                    "small_cnn", "--weights", "none", "--stage1-epochs", "1", "--stage2-epochs", "1", "--lr", "0.01",
                    "--stage2-lr", "0.01", "--batch-size", "32", "--workers", "0", "--quiet",
                    "--checkpoints", str(tmp_path / "uth.pt.checkpoints"), "--resume"])
    assert res.exit_code == 0, res.output
    assert load_encoder(tmp_path / "again.pt").encoder_spec() == enc.encoder_spec()
    res = run(cli, ["train-uth", str(root), "--out", str(out), "--bits", "12", "--backbone", "small_cnn"])
    assert res.exit_code != 0 and "12" in res.output


def test_the_trunk_starts_from_a_local_state_dict(tmp_path):
    from milvus_hash.features.small_cnn import SmallCNN, save_weights

    torch.manual_seed(7)
    base = SmallCNN(n_classes=5)
    path = save_weights(base, tmp_path / "base.pt")
    enc = UTHEncoder(16, **{**FAST, "weights": str(path)})
    net = enc._build(enc.weights)
    conv = dict(net.trunk.named_parameters())["features.0.weight"]
    assert torch.equal(conv, base.features[0].weight) and enc.trunk_weights_ == str(path)
    with pytest.raises(InvalidInputError, match="weights.*no file"):
        UTHEncoder(16, **{**FAST, "weights": str(tmp_path / "missing.pt")}).fit(np.zeros((8, 28, 28), np.uint8))
