"""Encoder identity and the LSH encoder."""

import numpy as np
import pytest

from milvus_hash import EncoderSpec, InvalidInputError, fingerprint, hamming_distances
from milvus_hash.encoders.lsh import LSHHasher


def test_fingerprint_depends_on_values_dtype_shape_and_params():
    a = np.arange(6, dtype=np.float32)
    base = fingerprint(a, n=1)
    assert base == fingerprint(a.copy(), n=1)
    assert base != fingerprint(a + 1, n=1)
    assert base != fingerprint(a.astype(np.float64), n=1)
    assert base != fingerprint(a.reshape(2, 3), n=1)
    assert base != fingerprint(a, n=2)


def test_spec_round_trip_and_validation():
    spec = EncoderSpec("ugh", "ab" * 32, 64)
    assert EncoderSpec.from_dict(spec.to_dict()) == spec
    assert str(spec) == f"ugh:{'ab' * 8} (64 bits)"
    with pytest.raises(InvalidInputError, match="n_bits"):
        EncoderSpec("ugh", "x", 60)
    with pytest.raises(InvalidInputError, match="kind"):
        EncoderSpec("", "x", 64)
    with pytest.raises(InvalidInputError, match="encoder record"):
        EncoderSpec.from_dict({"kind": "x"})


def test_lsh_codes_preserve_angles_and_save_without_pickle(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 32)).astype(np.float32)
    near = X + 0.05 * rng.standard_normal(X.shape).astype(np.float32)
    h = LSHHasher(n_bits=256, random_state=1).fit(X)
    codes, near_codes = h.transform(X), h.transform(near)
    assert codes.shape == (300, 32) and codes.dtype == np.uint8
    d_near = np.diag(hamming_distances(codes, near_codes))
    d_far = hamming_distances(codes[:1], codes[1:])[0]
    assert d_near.mean() < 0.25 * d_far.mean()
    h.save(tmp_path / "lsh.npz")
    h2 = LSHHasher.load(tmp_path / "lsh.npz")
    np.testing.assert_array_equal(h2.transform(X), codes)
    assert h2.encoder_spec() == h.encoder_spec()
    assert LSHHasher(n_bits=256, random_state=2).fit(X).encoder_spec() != h.encoder_spec()


def test_lsh_bad_input():
    with pytest.raises(InvalidInputError, match="n_bits"):
        LSHHasher(n_bits=10).fit(np.zeros((5, 3)))
    h = LSHHasher(n_bits=8).fit(np.random.rand(5, 3))
    with pytest.raises(InvalidInputError, match="X: expected 3 features"):
        h.transform(np.zeros((2, 4)))
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        LSHHasher().transform(np.zeros((2, 3)))
