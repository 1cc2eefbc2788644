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


def test_lsh_is_a_scikit_learn_estimator_without_importing_scikit_learn():
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.random.default_rng(0).standard_normal((50, 6)).astype(np.float32)
    h = LSHHasher(16, random_state=3)
    assert h.get_params() == {"center": True, "n_bits": 16, "random_state": 3}
    assert repr(h) == "LSHHasher(n_bits=16, random_state=3)"
    c = clone(h)
    assert c is not h and c.get_params() == h.get_params() and not hasattr(c, "components_")
    assert np.array_equal(make_pipeline(StandardScaler(), h).fit_transform(X),
                          h.fit(StandardScaler().fit_transform(X)).transform(StandardScaler().fit_transform(X)))
    assert h.set_params(n_bits=24) is h and h.n_bits == 24
    with pytest.raises(InvalidInputError, match="bits: expected a hyper-parameter of LSHHasher"):
        h.set_params(bits=8)
    with pytest.raises(InvalidInputError, match="X: expected finite numbers"):
        h.fit(np.array([[1.0, np.nan]]))
    with pytest.raises(InvalidInputError, match="X: expected a 2-D matrix"):
        h.fit(np.ones(3))


def test_a_query_encodes_pixels_without_importing_torch_or_scikit_learn(tmp_path):
    """What `search --image` and `category define --examples` load for a pixels library: importing
    torch, torchvision and scikit-learn cost 4.5 s of a 5 s query (benchmarks/cli_startup.py)."""
    import subprocess
    import sys

    from PIL import Image

    from milvus_hash.encoders.ugh.library import UGHLibrary

    X = np.random.default_rng(0).standard_normal((120, 64)).astype(np.float32)
    lib = UGHLibrary(n_subset=120, n_candidates=5, n_categories=3, per_category=4, bits_per_round=8, n_expand=6,
                     n_rounds=1, n_iter=3, random_state=0).fit(X)
    lib.features_ = {"name": "pixels", "weights": "none", "fingerprint": "f", "dim": 64}
    lib.save(tmp_path / "lib.npz")
    Image.new("L", (20, 20), 77).save(tmp_path / "q.png")
    code = f"""
import sys
from PIL import Image
from milvus_hash.encoders import load_encoder
from milvus_hash.features import get_extractor, record_arguments
lib = load_encoder({str(tmp_path / 'lib.npz')!r})
codes = lib.transform(get_extractor(**record_arguments(lib.features_)).extract([Image.open({str(tmp_path / 'q.png')!r})]))
assert codes.shape == (1, 1), codes.shape
heavy = sorted(m for m in ("torch", "torchvision", "sklearn", "scipy") if m in sys.modules)
print(heavy)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
