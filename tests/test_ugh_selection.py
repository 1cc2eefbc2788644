"""Few-shot bit selection on library codes, and the ITQ baselines."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import clustered

from milvus_hash import InvalidInputError, select_bits
from milvus_hash.encoders.itq import ITQHasher, itq_rotation
from milvus_hash.encoders.ugh.library import UGHLibrary
from milvus_hash.encoders.ugh.selection import L1BitSelector
from milvus_hash.eval import mean_average_precision


@pytest.fixture(scope="module")
def unseen_setup():
    """A library hyper-trained on clusters 0-19 only; few-shot retrieval on clusters 20-29."""
    X, y = clustered(6000, 32, 30, spread=1.3, seed=3)
    seen = y < 20
    lib = UGHLibrary(n_subset=2500, n_categories=20, per_category=5, n_expand=25, bits_per_round=8,
                     n_rounds=32, random_state=0).fit(X[seen])
    Xu, yu = X[~seen], y[~seen]
    return lib, lib.transform(Xu), yu


def test_selected_bits_beat_random_library_bits_on_unseen_categories(unseen_setup):
    lib, codes, y = unseen_setup
    rng = np.random.default_rng(0)
    queries = rng.choice(len(y), 300, replace=False)
    gains = []
    for draw in range(3):
        r = np.random.default_rng(draw)
        lab = np.concatenate([r.choice(np.flatnonzero(y == c), 10, replace=False) for c in np.unique(y)])
        sel = L1BitSelector(16).fit(codes[lab], y[lab])
        assert sel.positions_.shape == (16,) and len(np.unique(sel.positions_)) == 16
        chosen = mean_average_precision(sel.transform(codes[queries]), y[queries], sel.transform(codes), y)
        pos = r.choice(lib.n_bits_, 16, replace=False)
        rand = mean_average_precision(select_bits(codes[queries], pos), y[queries], select_bits(codes, pos), y)
        gains.append(chosen - rand)
    assert np.mean(gains) > 0.05, gains  # measured: +0.11 to +0.20 (with 3-5 examples it is noise)


def test_one_category_with_background(unseen_setup):
    _, codes, y = unseen_setup
    pos = np.flatnonzero(y == 25)[:5]
    background = codes[np.flatnonzero(y != 25)[:200]]
    sel = L1BitSelector(8).fit(codes[pos], y[pos], background=background)
    assert sel.transform(codes).shape == (len(codes), 1)
    with pytest.raises(InvalidInputError, match="at least two categories, or background codes"):
        L1BitSelector(8).fit(codes[pos], y[pos])


def test_regularisation_is_relaxed_until_enough_bits(unseen_setup):
    _, codes, y = unseen_setup
    lab = np.concatenate([np.flatnonzero(y == c)[:3] for c in (20, 21)])
    sel = L1BitSelector(32, C=1e-4).fit(codes[lab], y[lab])
    assert sel.lowered_ > 0 and sel.C_ > 1e-4
    # 6 examples cannot keep 32 L1 weights: the rest is filled, and says so
    assert sel.filled_ == 32 - np.count_nonzero(sel.weights_) > 0
    assert len(np.unique(sel.positions_)) == 32
    many = np.concatenate([np.flatnonzero(y == c)[:30] for c in (20, 21, 22, 23)])
    enough = L1BitSelector(16, C=1e-3).fit(codes[many], y[many])
    assert enough.lowered_ > 0 and enough.filled_ == 0


@pytest.mark.parametrize("n_bits", [4, 12, 2048])
def test_bad_bit_counts(unseen_setup, n_bits):
    _, codes, y = unseen_setup
    with pytest.raises(InvalidInputError, match="n_bits"):
        L1BitSelector(n_bits).fit(codes[:20], y[:20])


def test_selection_input_checks(unseen_setup):
    _, codes, y = unseen_setup
    with pytest.raises(InvalidInputError, match="y: expected 20 labels"):
        L1BitSelector(8).fit(codes[:20], y[:19])
    with pytest.raises(InvalidInputError, match="codes: expected dtype uint8"):
        L1BitSelector(8).fit(codes[:20].astype(np.int16), y[:20])
    with pytest.raises(InvalidInputError, match="at most the library's 256 bits"):
        L1BitSelector(512).fit(codes[:20], y[:20])


def test_itq_rotation_lowers_quantization_loss():
    rng = np.random.default_rng(0)
    V = rng.standard_normal((2000, 8)) @ rng.standard_normal((8, 8))
    V -= V.mean(0)
    R = itq_rotation(V, rng=np.random.default_rng(1))
    np.testing.assert_allclose(R @ R.T, np.eye(8), atol=1e-8)
    loss = lambda M: np.linalg.norm(np.sign(M) - M) ** 2  # noqa: E731
    assert loss(V @ R) < loss(V)


def test_itq_hashers():
    X, y = clustered(2000, 32, 10, spread=1.3, seed=1)
    pca = ITQHasher(16).fit(X)
    codes = pca.transform(X)
    assert codes.shape == (2000, 2)
    bits = np.unpackbits(codes, axis=1).mean(0)
    assert np.all((bits > 0.2) & (bits < 0.8))  # ITQ balances its bits
    cca = ITQHasher(16, projection="cca").fit(X[:100], y[:100], unlabeled=X)
    m_cca = mean_average_precision(cca.transform(X[:200]), y[:200], cca.transform(X), y)
    assert m_cca > 0.3
    with pytest.raises(InvalidInputError, match="y: expected labels of at least two categories"):
        ITQHasher(16, projection="cca").fit(X)
    with pytest.raises(InvalidInputError, match="projection"):
        ITQHasher(16, projection="lda").fit(X)
    assert pca.encoder_spec().kind == "pca-itq" and cca.encoder_spec().kind == "cca-itq"
    # one example of each of 5 classes, 16 bits: 4 label directions, 12 filled (from the unlabeled rows,
    # or at random when there are none)
    few = np.concatenate([np.flatnonzero(y == c)[:1] for c in range(5)])
    for unlabeled in (X, None):
        cca5 = ITQHasher(16, projection="cca").fit(X[few], y[few], unlabeled=unlabeled)
        assert cca5.projection_.shape == (32, 16) and cca5.transform(X).shape == (2000, 2)


def test_cca_coder_beats_random_bits_and_l1_on_unseen_categories(unseen_setup):
    from milvus_hash.encoders.ugh.fewshot import CCACoder

    lib, codes, y = unseen_setup
    rng = np.random.default_rng(1)
    queries = rng.choice(len(y), 300, replace=False)
    ours, l1 = [], []
    for draw in range(3):
        r = np.random.default_rng(draw)
        lab = np.concatenate([r.choice(np.flatnonzero(y == c), 3, replace=False) for c in np.unique(y)])
        coder = CCACoder(16, random_state=draw).fit(codes[lab], y[lab], background=codes)
        assert coder.projection_.shape == (lib.n_bits_, 16)
        cat = coder.transform(codes)
        assert cat.shape == (len(codes), 2)
        ours.append(mean_average_precision(cat[queries], y[queries], cat, y))
        sel = L1BitSelector(16).fit(codes[lab], y[lab])
        l1.append(mean_average_precision(sel.transform(codes[queries]), y[queries], sel.transform(codes), y))
    assert np.mean(ours) > np.mean(l1), (ours, l1)


def test_cca_coder_input_checks(unseen_setup):
    from milvus_hash.encoders.ugh.fewshot import CCACoder

    _, codes, y = unseen_setup
    with pytest.raises(InvalidInputError, match="background: expected unlabeled library codes"):
        CCACoder(16).fit(codes[:20], y[:20], background=None)
    with pytest.raises(InvalidInputError, match="n_bits"):
        CCACoder(12).fit(codes[:20], y[:20], background=codes)
    with pytest.raises(InvalidInputError, match="background: expected 32 bytes per code"):
        CCACoder(16).fit(codes[:20], y[:20], background=codes[:, :4])
    one = CCACoder(8).fit(codes[y == 22][:5], y[y == 22][:5], background=codes)  # one category + background
    assert one.transform(codes[:3]).shape == (3, 1)
