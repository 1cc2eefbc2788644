"""The background sample categories learn against: read from Milvus by id residues (Lite and the
server) exactly as the numpy reference samples it, and its cached statistics change no result."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import make_spec, random_codes

from milvus_hash.categories.background_sample import read_background, residue_plan, sample_ids
from milvus_hash.categories.category import learn_category
from milvus_hash.encoders.ugh.background import Background
from milvus_hash.encoders.ugh.fewshot import CCACoder


@pytest.mark.unit
def test_sample_ids_whole_residue_classes_seeded_and_everything_when_small():
    ids = np.arange(10_000, dtype=np.int64) * 3 + 7
    a, b = sample_ids(ids, 1_000, seed=0), sample_ids(ids, 1_000, seed=0)
    assert np.array_equal(a, b) and not np.array_equal(a, sample_ids(ids, 1_000, seed=1))
    assert 1_000 <= a.size < 1_000 + 2 * 10_000 / residue_plan(10_000, 1_000, 0)[0]
    assert np.all(np.diff(a) > 0) and np.isin(a, ids).all()
    m, order = residue_plan(10_000, 1_000, 0)
    assert sorted(order.tolist()) == list(range(m))
    assert set(np.unique(a % m).tolist()) < set(range(m))  # whole residue classes, not all of them
    few = np.array([5, -3, 9], np.int64)
    assert sample_ids(few, 1_000, seed=0).tolist() == [-3, 5, 9]


def test_read_background_equals_the_reference_and_the_stored_codes(store, collection):
    rng = np.random.default_rng(4)
    ids = np.unique(rng.integers(-2**40, 2**40, 3_000))  # negative and sparse ids too
    codes = random_codes(ids.size, 256, seed=4)
    spec = make_spec(256)
    store.create_collection(collection, encoder=spec)
    store.insert(collection, ids=ids, codes=codes, encoder=spec)
    got_ids, got_codes = read_background(store, collection, 700, seed=3)
    assert np.array_equal(got_ids, sample_ids(ids, 700, seed=3))
    assert np.array_equal(got_codes, codes[np.searchsorted(ids, got_ids)])
    all_ids, all_codes = read_background(store, collection, 5_000, seed=3)  # more than stored: everything
    assert np.array_equal(all_ids, ids) and np.array_equal(all_codes, codes)


@pytest.mark.unit
def test_a_cached_background_gives_the_same_category_as_plain_codes():
    rng = np.random.default_rng(0)
    centres = rng.integers(0, 2, (4, 512), dtype=np.uint8)
    y = rng.integers(0, 4, 900)
    bits = centres[y] ^ (rng.random((900, 512)) < 0.2)
    codes = np.packbits(bits.astype(np.uint8), axis=1)
    bg = Background(codes[100:])
    spec = make_spec(512)
    for pos in (np.flatnonzero(y[:100] == 1)[:5], np.flatnonzero(y[:100] == 2)[:3]):
        plain = learn_category("c", codes[pos], ["c"] * len(pos), background=codes[100:], n_bits=16,
                               method="cca", library=spec)
        cached = learn_category("c", codes[pos], ["c"] * len(pos), background=bg, n_bits=16, method="cca",
                                library=spec)
        assert plain.arrays.keys() == cached.arrays.keys()
        for k in plain.arrays:
            assert np.array_equal(plain.arrays[k], cached.arrays[k]), k
    task = CCACoder(16).fit(codes[:100], y[:100], background=bg)
    assert np.array_equal(task.projection_, CCACoder(16).fit(codes[:100], y[:100], background=codes[100:]).projection_)


def test_background_statistics_equal_their_definitions():
    from milvus_hash.codes import signed_bits

    codes = random_codes(333, 1024, seed=5)
    bg = Background(codes)
    assert np.array_equal(bg.bit_counts(), np.unpackbits(codes, axis=1).sum(0, dtype=np.float64))
    assert np.array_equal(bg.mean(), signed_bits(codes).mean(0))
    assert Background(codes[:0]).mean().shape == (1024,)


def test_leave_one_out_scores_equal_each_positive_scored_by_the_model_of_the_others():
    from milvus_hash.categories.membership import background_frequency, log_odds_weights, loo_scores, base_scores

    pos = random_codes(7, 512, seed=3)
    q = background_frequency(random_codes(300, 512, seed=4))
    scale = np.array([0.5, 2.0, 240.0, 5.0], np.float32)
    expect = []
    for i in range(len(pos)):
        rest = np.delete(pos, i, axis=0)
        w, b = log_odds_weights(rest, q, prior=4.0)
        expect.append(base_scores(w, b, scale, rest, pos[i:i + 1])[0])
    np.testing.assert_allclose(loo_scores(pos, q, 4.0, scale), expect, rtol=1e-5, atol=1e-4)


@pytest.mark.unit
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_calibration_curve_is_calibrated_on_a_known_mixture(seed):
    """Background scores: 10% members N(4, 1) among non-members N(0, 1); 8 positives from the
    members. On fresh labelled scores the curve's Brier score is within 0.005 of Bayes' posterior's,
    and in each band of probability the share of members is at least the mean probability (within
    0.05: the curve does not over-state) and at most 0.3 above it (it is conservative: the
    non-members' deviation, from the contaminated background, comes out about 14% wide)."""
    from scipy.stats import norm

    from milvus_hash.categories.membership import calibration_curve, probabilities

    rng = np.random.default_rng(seed)
    s_bg = np.concatenate([rng.normal(0, 1, 1800), rng.normal(4, 1, 200)])
    curve = calibration_curve(s_bg, rng.normal(4, 1, 8), np.array([1.0, 0.0, 1.0]))
    assert curve.shape == (2, 128) and np.all(np.diff(curve[1]) >= 0)
    member = rng.random(40_000) < 0.1
    s = np.where(member, rng.normal(4, 1, member.size), rng.normal(0, 1, member.size))
    p = probabilities(curve, s)
    truth = 0.1 * norm.pdf(s, 4) / (0.1 * norm.pdf(s, 4) + 0.9 * norm.pdf(s))
    assert np.mean((p - member) ** 2) <= np.mean((truth - member) ** 2) + 0.005
    for lo, hi in ((0.1, 0.5), (0.5, 0.9), (0.9, 1.01)):
        band = (p >= lo) & (p < hi)
        assert band.sum() > 100 and -0.05 < member[band].mean() - p[band].mean() < 0.3, (lo, hi)
    assert probabilities(curve, np.array([-8.0, -1.0])).max() < 0.01


@pytest.mark.unit
def test_categories_stored_before_the_curve_keep_their_platt_probabilities():
    from milvus_hash.categories.membership import class_calibration, probabilities

    arrays = {"member_platt": np.array([[2.0, -1.0, 0.5]], np.float32)}
    got = probabilities(class_calibration(arrays, 0), np.array([-3.0, 0.5, 3.0]))
    expect = np.minimum(1 / (1 + np.exp(-(2.0 * np.array([-3.0, 0.5, 3.0]) - 1.0))) / 0.5, 1.0)
    np.testing.assert_allclose(got, expect, rtol=1e-6)


@pytest.mark.lite
def test_defining_a_category_imports_neither_torch_nor_scikit_learn(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        from milvus_hash import HashClient, HashStore
        from milvus_hash.encoders.spec import EncoderSpec
        codes = np.random.default_rng(0).integers(0, 256, (300, 64), dtype=np.uint8)
        spec = EncoderSpec("ugh", "f" * 64, 512)
        with HashStore({str(tmp_path / 'b.db')!r}) as store:
            store.create_collection("lib", encoder=spec)
            store.insert("lib", ids=np.arange(300), codes=codes, encoder=spec)
            with HashClient(store=store, collection="lib") as client:
                client.define("c", ids=[1, 2, 3])
                client.members("c", k=10)
        print(sorted(m for m in ("torch", "sklearn") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
