"""UGH hyper-training: batched SVMs, Max-Min sampling, DBC, calibration, and the library estimator."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import clustered

from milvus_hash import InvalidInputError, hamming_topk
from milvus_hash.encoders.ugh.calibration import platt_fit
from milvus_hash.encoders.ugh.dbc import dbc_objective, fit_dbc, pair_costs, update_codes
from milvus_hash.encoders.ugh.library import UGHLibrary
from milvus_hash.encoders.ugh.sampling import max_min_sample
from milvus_hash.encoders.ugh.svm import add_bias, fit_linear_svms, objective


def test_batched_svms_reach_liblinears_optimum():
    from sklearn.svm import LinearSVC

    X, _ = clustered(n=400, d=20)
    rng = np.random.default_rng(1)
    Y = np.where(X[:, :6] + 0.3 * rng.standard_normal((400, 6)) > 0, 1.0, -1.0).astype(np.float32)
    Xt, Yt = add_bias(torch.as_tensor(X)), torch.as_tensor(Y)
    W = fit_linear_svms(Xt, Yt, gamma=1.0, lam=1.0, tol=1e-5, cg_iters=50)
    ours = objective(Xt, Yt, W, 1.0, 1.0).numpy()
    for k in range(6):
        # liblinear: 0.5 ||w||^2 + C sum sqhinge, the same problem for C = lam / (2 gamma)
        clf = LinearSVC(C=0.5, loss="squared_hinge", intercept_scaling=1.0, tol=1e-8, max_iter=100_000).fit(X, Y[:, k])
        w = torch.as_tensor(np.concatenate([clf.coef_[0], clf.intercept_]).astype(np.float32))[:, None]
        ref = objective(Xt, Yt[:, k:k + 1], w, 1.0, 1.0).item()
        assert ours[k] <= ref * (1 + 1e-4)


def test_max_min_sampling_gives_disjoint_categories_of_near_neighbours():
    X, _ = clustered(n=500)
    groups = max_min_sample(X, n_categories=12, per_category=5, n_candidates=20, rng=np.random.default_rng(0))
    assert groups.shape == (12, 5) and len(np.unique(groups)) == 60
    seeds = X[groups[:, 0]]
    d_seed = np.linalg.norm(seeds[:, None] - seeds[None], axis=2)
    np.fill_diagonal(d_seed, np.inf)
    random_sets = [X[np.random.default_rng(s).choice(500, 12, replace=False)] for s in range(20)]
    spreads = []
    for R in random_sets:
        d = np.linalg.norm(R[:, None] - R[None], axis=2)
        np.fill_diagonal(d, np.inf)
        spreads.append(d.min())
    assert d_seed.min() >= np.median(spreads)  # the Max step keeps a well-spread seed set
    within = np.mean([np.linalg.norm(X[g[1:]] - X[g[0]], axis=1).mean() for g in groups])
    overall = np.linalg.norm(X[:100, None] - X[None, :100], axis=2).mean()
    assert within < 0.6 * overall  # the Min step gathers near neighbours
    with pytest.raises(InvalidInputError, match="at least n_categories \\* per_category = 60"):
        max_min_sample(X[:50], n_categories=12, per_category=5, n_candidates=3, rng=np.random.default_rng(0))


def brute_block_optimum(H, labels, S, c, lam1, lam2):
    """Best objective reachable by changing only category c's codes (enumerated)."""
    idx = np.flatnonzero(labels == c)
    W = torch.zeros((1, H.shape[1]), dtype=torch.float64)
    best = np.inf
    for bits in itertools.product([False, True], repeat=idx.size * H.shape[1]):
        G = H.copy()
        G[idx] = np.array(bits).reshape(idx.size, H.shape[1])
        best = min(best, dbc_objective(G, labels, S, W, gamma=1, lam1=lam1, lam2=lam2))
    return best


def test_code_update_solves_each_category_block_exactly():
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(3), 3)
    H = rng.random((9, 2)) > 0.5
    S = rng.standard_normal((9, 2)) * 1.5
    W = torch.zeros((1, 2), dtype=torch.float64)
    for lam2 in (0.1, 0.5):
        before = dbc_objective(H, labels, S, W, gamma=1, lam1=1.0, lam2=lam2)
        after_one = update_codes(H, labels, S, lam1=1.0, lam2=lam2, sweeps=1)
        after = dbc_objective(after_one, labels, S, W, gamma=1, lam1=1.0, lam2=lam2)
        assert after <= before + 1e-9
        converged = update_codes(H, labels, S, lam1=1.0, lam2=lam2, sweeps=50)
        value = dbc_objective(converged, labels, S, W, gamma=1, lam1=1.0, lam2=lam2)
        for c in range(3):  # at convergence no category can do better alone
            assert value <= brute_block_optimum(converged, labels, S, c, 1.0, lam2) + 1e-9


def test_pair_costs_match_pairwise_count():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(4), 5)
    H = rng.random((20, 3)) > 0.5
    ones = np.stack([H[labels == c].sum(0) for c in range(4)]).astype(float)
    within = between = 0
    for i, j in itertools.combinations(range(20), 2):
        d = (H[i] != H[j]).sum()
        if labels[i] == labels[j]:
            within += d
        else:
            between += d
    assert pair_costs(ones, np.full(4, 5), 0.3).sum() == pytest.approx(within - 0.3 * between)


def test_dbc_objective_never_increases_and_codes_follow_categories():
    X, y = clustered(n=800, d=24, k=8, spread=0.6, seed=5)
    groups = max_min_sample(X, n_categories=8, per_category=6, n_candidates=20, rng=np.random.default_rng(1))
    labels = np.repeat(np.arange(8), 6)
    res = fit_dbc(add_bias(torch.as_tensor(X[groups.ravel()])), labels, n_bits=16, n_iter=10,
                  rng=np.random.default_rng(2))
    h = np.array(res.history)
    assert len(h) >= 2 and np.all(np.diff(h) <= 1e-6 * np.abs(h[:-1]))
    codes = res.codes
    same = [(codes[a] != codes[b]).sum() for a, b in itertools.combinations(range(48), 2) if labels[a] == labels[b]]
    diff = [(codes[a] != codes[b]).sum() for a, b in itertools.combinations(range(48), 2) if labels[a] != labels[b]]
    assert np.mean(same) < 0.5 * np.mean(diff)


def test_platt_recovers_a_known_sigmoid():
    rng = np.random.default_rng(0)
    S = rng.standard_normal((4000, 3)) * 2
    a_true, b_true = np.array([2.0, 0.5, -1.0]), np.array([0.5, -1.0, 0.0])
    T = rng.random((4000, 3)) < 1 / (1 + np.exp(-(a_true * S + b_true)))
    a, b = platt_fit(S, T)
    np.testing.assert_allclose(a, a_true, atol=0.15)
    np.testing.assert_allclose(b, b_true, atol=0.15)
    a1, b1 = platt_fit(S[:, :1], np.ones((4000, 1), dtype=bool))  # all targets agree: finite, says 1
    assert np.isfinite(a1).all() and np.isfinite(b1).all()
    assert (a1 * S[:, :1] + b1 >= 0).mean() > 0.9


SMALL = dict(n_subset=1500, n_categories=10, per_category=4, n_expand=20, bits_per_round=8, n_rounds=8)


def test_library_fit_transform_reproducible_and_saved_without_pickle(tmp_path):
    X, y = clustered(n=2000, d=32, k=30, spread=1.2, seed=7)
    lib = UGHLibrary(random_state=11, **SMALL).fit(X)
    assert lib.W_.shape == (33, 64) and lib.n_bits_ == 64
    codes = lib.transform(X)
    assert codes.shape == (2000, 8) and codes.dtype == np.uint8
    probs = lib.decision_function(X[:50])
    np.testing.assert_array_equal(np.packbits(probs >= 0.5, axis=1), codes[:50])
    bits = np.unpackbits(codes, axis=1).mean(0)
    assert 0.05 < bits.mean() < 0.95
    again = UGHLibrary(random_state=11, n_jobs=2, **SMALL).fit(X)
    np.testing.assert_array_equal(again.W_, lib.W_)  # the same library whatever n_jobs is
    assert again.encoder_spec() == lib.encoder_spec()
    other = UGHLibrary(random_state=12, **SMALL).fit(X)
    assert other.encoder_spec() != lib.encoder_spec()
    lib.save(tmp_path / "ugh.npz")
    loaded = UGHLibrary.load(tmp_path / "ugh.npz")
    np.testing.assert_array_equal(loaded.transform(X), codes)
    assert loaded.encoder_spec() == lib.encoder_spec() and loaded.get_params() == lib.get_params()
    # neighbours in library-code space share their cluster far more often than chance
    top = hamming_topk(codes[:200], codes, 11)
    assert (y[top.ids[:, 1:]] == y[:200, None]).mean() > 0.5


def test_a_fit_resumes_from_the_rounds_a_crashed_fit_finished(tmp_path, monkeypatch):
    """Rounds are kept in checkpoint_dir as they finish: a rerun (here with more rounds, as after a
    crash half-way) computes only the missing ones and gives the library of an uninterrupted fit."""
    import milvus_hash.encoders.ugh.library as library_module

    X, _ = clustered(n=2000, d=32, k=30, spread=1.2, seed=7)
    calls = []
    real = library_module._run_round
    monkeypatch.setattr(library_module, "_run_round", lambda *a: (calls.append(1), real(*a))[1])
    half = UGHLibrary(random_state=11, **{**SMALL, "n_rounds": SMALL["n_rounds"] // 2},
                      checkpoint_dir=str(tmp_path / "rounds")).fit(X)
    assert half.resumed_rounds_ == 0 and len(list((tmp_path / "rounds").glob("round-*.npz"))) == SMALL["n_rounds"] // 2
    full = UGHLibrary(random_state=11, **SMALL, checkpoint_dir=str(tmp_path / "rounds")).fit(X)
    assert full.resumed_rounds_ == SMALL["n_rounds"] // 2 and len(calls) == SMALL["n_rounds"]
    ref = UGHLibrary(random_state=11, **SMALL).fit(X)
    np.testing.assert_array_equal(full.W_, ref.W_)
    np.testing.assert_array_equal(full.a_, ref.a_)
    assert full.history_ == ref.history_
    # other features: the folder's rounds are not theirs, and are computed again
    other = UGHLibrary(random_state=11, **SMALL, checkpoint_dir=str(tmp_path / "rounds")).fit(X[::-1].copy())
    assert other.resumed_rounds_ == 0
    full.save(tmp_path / "lib.npz")  # the checkpoint folder is a local path: not part of the library
    assert UGHLibrary.load(tmp_path / "lib.npz").checkpoint_dir is None


def test_library_bad_input():
    X, _ = clustered(n=500, d=16)
    with pytest.raises(InvalidInputError, match="X: expected at least n_subset = 1500 rows"):
        UGHLibrary(**SMALL).fit(X)
    with pytest.raises(InvalidInputError, match="n_subset: expected at least n_categories \\* \\(per_category \\+ n_expand\\)"):
        UGHLibrary(**{**SMALL, "n_subset": 100}).fit(X)
    with pytest.raises(InvalidInputError, match="bits_per_round \\* n_rounds"):
        UGHLibrary(**{**SMALL, "n_subset": 400, "n_rounds": 3, "bits_per_round": 5}).fit(X)
    with pytest.raises(InvalidInputError, match="n_categories: expected at least 2"):
        UGHLibrary(**{**SMALL, "n_subset": 400, "n_categories": 1}).fit(X)
    lib = UGHLibrary(**{**SMALL, "n_subset": 400, "n_rounds": 1}).fit(X)
    with pytest.raises(InvalidInputError, match="X: expected 16 features"):
        lib.transform(np.zeros((3, 10), dtype=np.float32))
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        UGHLibrary().transform(X)


def test_library_file_checks(tmp_path):
    X, _ = clustered(n=500, d=16)
    lib = UGHLibrary(**{**SMALL, "n_subset": 400, "n_rounds": 1}).fit(X)
    lib.save(tmp_path / "lib.npz")
    with np.load(tmp_path / "lib.npz") as data:
        parts = dict(data)
    parts["W"] = parts["W"] + 1
    np.savez(tmp_path / "tampered.npz", **parts)
    with pytest.raises(InvalidInputError, match="recorded fingerprint"):
        UGHLibrary.load(tmp_path / "tampered.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(InvalidInputError, match="a UGH library file"):
        UGHLibrary.load(tmp_path / "other.npz")


def test_shipped_config_holds_the_papers_hyper_parameters():
    from pathlib import Path

    from milvus_hash.config import load_config

    conf = load_config(Path(__file__).resolve().parents[1] / "configs" / "ugh.yaml")["ugh"]
    lib = UGHLibrary(**conf)
    paper = dict(n_subset=20_000, n_candidates=50, n_categories=30, per_category=6, bits_per_round=10,
                 n_expand=50, n_rounds=2_000, gamma=1.0, lambda1=1.0)
    assert {k: lib.get_params()[k] for k in paper} == paper
    assert {k: UGHLibrary().get_params()[k] for k in paper} == paper  # the estimator's defaults too
