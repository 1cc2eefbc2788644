"""Hamming-ranking metrics against hand-computed values and scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from milvus_hash import InvalidInputError, pack_bits
from milvus_hash.eval import average_precisions, mean_average_precision, precision_within_radius


def codes_at_distances(dists, n_bits=16):
    """Database codes whose distance to the all-zero query is given."""
    bits = np.zeros((len(dists), n_bits), dtype=np.uint8)
    for i, d in enumerate(dists):
        bits[i, :d] = 1
    return pack_bits(bits)


def test_hand_computed_with_ties_broken_by_id():
    q = np.zeros((1, 2), dtype=np.uint8)
    db = codes_at_distances([1, 0, 1, 3])  # ranking by (distance, id): 1, 0, 2, 3
    labels = np.array([1, 0, 1, 1])
    # relevant (label 1) at ranks 2, 3, 4: AP = (1/2 + 2/3 + 3/4) / 3
    assert average_precisions(q, [1], db, labels)[0] == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3)
    # other ids flip the tie between rows 0 and 2 only: same ranks for the relevant ones
    assert average_precisions(q, [1], db, labels, db_ids=[5, 0, 7, 9])[0] == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3)
    # mAP@2: relevant within the first 2 = {row 0 at rank 2}: precision 1/2 averaged over 1 hit
    assert average_precisions(q, [1], db, labels, top=2)[0] == pytest.approx(0.5)
    assert average_precisions(q, [2], db, labels)[0] == 0.0  # nothing relevant


def test_equals_sklearn_when_there_are_no_ties():
    rng = np.random.default_rng(0)
    n = 40
    dists = rng.permutation(n)  # 40 distinct distances need 40+ bits
    db = codes_at_distances(dists, n_bits=48)
    labels = rng.integers(0, 2, n)
    q = np.zeros((1, 6), dtype=np.uint8)
    ours = mean_average_precision(q, [1], db, labels)
    assert ours == pytest.approx(average_precision_score(labels == 1, -dists))


def test_precision_within_radius():
    q = np.zeros((2, 2), dtype=np.uint8)
    q[1, 0] = 0xFF  # second query is 8 bits away from everything near zero
    db = codes_at_distances([0, 1, 2, 3, 2])
    labels = np.array([1, 1, 0, 1, 1])
    # query 0 retrieves rows 0, 1, 2, 4 (distance <= 2): 3 relevant of 4; query 1 retrieves none: 0
    assert precision_within_radius(q, [1, 1], db, labels, radius=2) == pytest.approx((3 / 4 + 0) / 2)


def test_bad_input():
    q = np.zeros((1, 2), dtype=np.uint8)
    with pytest.raises(InvalidInputError, match="db_labels"):
        mean_average_precision(q, [1], q, [1, 2])
    with pytest.raises(InvalidInputError, match="top"):
        mean_average_precision(q, [1], q, [1], top=0)
    with pytest.raises(InvalidInputError, match="radius"):
        precision_within_radius(q, [1], q, [1], radius=-1)


def test_precision_and_recall_at_k_hand_computed():
    from milvus_hash.eval import precision_recall_at_k

    q = np.zeros((1, 2), dtype=np.uint8)
    db = codes_at_distances([1, 0, 1, 3, 2])  # ranking by (distance, id): 1, 0, 2, 4, 3
    labels = np.array([1, 0, 1, 1, 0])  # 3 relevant
    assert precision_recall_at_k(q, [1], db, labels, k=2) == pytest.approx((1 / 2, 1 / 3))
    assert precision_recall_at_k(q, [1], db, labels, k=3) == pytest.approx((2 / 3, 2 / 3))
    assert precision_recall_at_k(q, [1], db, labels, k=5) == pytest.approx((3 / 5, 1.0))
    assert precision_recall_at_k(q, [7], db, labels, k=2) == (0.0, 0.0)  # nothing relevant
    with pytest.raises(InvalidInputError, match="k"):
        precision_recall_at_k(q, [1], db, labels, k=0)


def test_pr_curve_over_hamming_radius_hand_computed():
    from milvus_hash.eval import pr_curve

    q = np.zeros((2, 1), dtype=np.uint8)
    q[1, 0] = 0xFF
    db = pack_bits(np.array([[0] * 8, [1] + [0] * 7, [1, 1] + [0] * 6, [1] * 8], dtype=np.uint8))
    labels = np.array([1, 1, 0, 1])
    # query 0 (label 1): distances 0, 1, 2, 8; query 1 (label 0): distances 8, 7, 6, 0
    c = pr_curve(q, [1, 0], db, labels)
    assert c["radius"].tolist() == list(range(9))
    # r = 0: q0 retrieves row 0 (relevant), q1 retrieves row 3 (not relevant): precision (1 + 0) / 2
    assert c["precision"][0] == pytest.approx(0.5) and c["recall"][0] == pytest.approx((1 / 3 + 0) / 2)
    # r = 2: q0 rows 0, 1, 2 (2 of 3 relevant), q1 row 3 (0 of 1)
    assert c["precision"][2] == pytest.approx((2 / 3 + 0) / 2) and c["recall"][2] == pytest.approx((2 / 3) / 2)
    # r = 8: everything: q0 3/4 relevant, q1 1/4; recall 1 for both
    assert c["precision"][8] == pytest.approx((3 / 4 + 1 / 4) / 2) and c["recall"][8] == pytest.approx(1.0)
    assert c["retrieving"].tolist() == [2] * 9
    assert np.all(np.diff(c["recall"]) >= 0)
