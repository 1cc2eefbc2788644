"""Membership of a category, ranked: log-odds on the library bits plus nearness to a positive.

A category's members are ranked by the sum of two standardised terms:

1. **How much more likely an item's library code is under the category than under the store's
   background** (naive Bayes). Each library bit ``j`` is a Bernoulli variable with probability
   ``p_j`` among the positives and ``q_j`` in the background (a sample of the store, with given
   negatives blended in); for a code ``f`` (bits as ±1) the log-likelihood ratio is
   ``nb(f) = sum_j w_j f_j + b``, ``w_j = (logit p_j - logit q_j) / 2``, with
   ``p_j = (count_j + a q_j) / (n + a)``: the positives' counts shrunk towards the background by ``a``
   pseudo-examples (``prior``). It sees the category as one mode.
2. **How near the item is to its nearest positive** (library Hamming distance), which keeps the
   category's several modes (a class is rarely one blob): what a plain search from the positives sees.

Each term is standardised by its mean and deviation over the background sample, and the score is
``z(nb) - z(d_min)``. Why this rule (``benchmarks/single_category.py --validate`` measures it; the
numbers are in ``docs/benchmarks.md``): on held-out Fashion-MNIST training images with a 20,000-bit
library it beat each term alone and every other rule we tried on library codes (Hamming to the
positives' majority code, the mean ±1 code, whitened exemplar-LDA, PCA of the library codes, query
expansion, graph diffusion on a k-NN graph).

Scores are turned into probabilities by Bayes' rule on the scores (positive-unlabeled learning: the
background holds unlabeled members too): the background's scores are a mixture of members and
non-members (:func:`score_mixture`: two normals, the positives' leave-one-out scores counted as
members), and ``P(member | s) = pi f_1(s) / (pi f_1(s) + (1 - pi) f_0(s))``, made non-decreasing in the
score and stored as a curve of :data:`CURVE_POINTS` points. With one positive there is no spread to
measure, and the curve is Platt's sigmoid fitted on the positive against the background, divided by
its value at the positive, in the manner of Elkan and Noto (2008). Why (``docs/design.md#membership``):
on held-out Fashion-MNIST training images (EfficientNet-Lite0 features, 400-bit library, 3,000 items,
300 of each class, 3 draws of each class), the previous calibration (Elkan-Noto for every n) gave the
top 10 members a mean probability of 1.00 where 86-88% were members and probability >= 0.5 to 992
items at precision 0.49 (n = 3); the mixture gives 0.63-0.77 (it is conservative), a Brier score of
0.121 / 0.112 / 0.079 / 0.077 for n = 2 / 3 / 5 / 10 against 0.342 / 0.199 / 0.104 / 0.088, and beat
a kernel-density ratio and a free two-normal EM. A score is a sum over bytes of a
lookup table, so ranking is cheap and memory is one table of ``(L // 8, 256)`` floats per class.
"""

from __future__ import annotations

import numpy as np

from ..codes import as_codes, hamming_distances, signed_bits, unpack_bits
from ..encoders.ugh.background import Background

#: Pseudo-examples that shrink the positives' bit frequencies towards the background's (chosen on
#: held-out training images; 1, 4 and 16 gave the same mAP within 0.002).
PRIOR = 4.0
#: Background codes a given negative is worth when blended into the background's frequencies.
NEGATIVE_WEIGHT = 20.0
#: Weight of the nearness-to-a-marked-negative term (``pull * z(d_neg)``; see :func:`negative_term`).
NEGATIVE_PULL = 0.5
#: Inverse regularisation of the feedback weights' logistic regression, its subspace, the sample
#: weights of a positive, a marked negative and a background code, and the weight of its term.
FEEDBACK_C = 0.01
FEEDBACK_DIRECTIONS = 128
FEEDBACK_WEIGHTS = (1.0, 5.0, 0.1)
FEEDBACK_MIX = 1.0
#: Label propagation once a category has marks (:func:`diffused_order`): the best items it
#: re-orders, neighbours in its graph, the propagation's alpha, the marks' seed (added to the best
#: standardised score), iterations, and the library bits the graph is built on (the first ones:
#: bounded cost on a 20,000-bit library). Chosen on held-out Fashion-MNIST training images.
DIFFUSION_POOL = 1000
DIFFUSION_KNN = 10
DIFFUSION_ALPHA = 0.8
DIFFUSION_SEED = 2.0
DIFFUSION_ITERATIONS = 20
GRAPH_BITS = 2048
#: Background codes (the first of the sample) that standardise the scores and calibrate them.
CALIBRATION = 2000
#: Points of each class's calibration curve (score -> probability).
CURVE_POINTS = 128
#: Floor on the deviation of the members' scores (the scores are sums of two standardised terms).
POSITIVE_SPREAD = 1.0
#: Positives needed to calibrate by the spread of their leave-one-out scores (else Platt's sigmoid;
#: with 2 positives the curve's Brier score is 0.121, Platt's 0.342).
MIN_SPREAD_POSITIVES = 2


def bit_frequencies(codes: np.ndarray) -> tuple[np.ndarray, float]:
    """Counts of set bits ``float64 (L,)`` of library codes ``uint8 (n, L // 8)``, and ``n``."""
    bits = unpack_bits(codes)
    return bits.sum(0, dtype=np.float64), float(bits.shape[0])


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def background_frequency(background, negatives: np.ndarray | None = None) -> np.ndarray:
    """Smoothed frequency ``q float64 (L,)`` of each bit in the background (codes or a
    :class:`~milvus_hash.encoders.ugh.background.Background`), with given negatives (each worth
    :data:`NEGATIVE_WEIGHT` background codes) blended in."""
    bg = Background.of(background)
    cnt, n = bg.bit_counts(), float(len(bg))
    if negatives is not None and len(negatives):
        c2, n2 = bit_frequencies(negatives)
        cnt, n = cnt + NEGATIVE_WEIGHT * c2, n + NEGATIVE_WEIGHT * n2
    return (cnt + 1.0) / (n + 2.0)


def log_odds_weights(positives: np.ndarray, q: np.ndarray, *, prior: float = PRIOR) -> tuple[np.ndarray, float]:
    """Weights ``float32 (L,)`` on ±1 bits and bias of the log-likelihood ratio of ``positives``
    (library codes ``uint8 (n, L // 8)``) against background frequencies ``q (L,)``."""
    cnt, n = bit_frequencies(positives)
    p = (cnt + prior * q) / (n + prior)
    lp, lq = _logit(p), _logit(q)
    w = (lp - lq) / 2.0
    # the constant: sum_j log(p_j (1 - p_j))/2 - log(q_j (1 - q_j))/2 makes s the exact log-ratio
    b = float((np.log(p) + np.log1p(-p) - np.log(q) - np.log1p(-q)).sum() / 2.0)
    return w.astype(np.float32), b


def byte_tables(weights: np.ndarray) -> np.ndarray:
    """Lookup tables ``float32 (L // 8, 256)``: the score contribution of each value of each byte."""
    w = np.asarray(weights, np.float32).reshape(-1, 8)
    values = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32) * 2 - 1  # (256, 8)
    return w @ values.T


def scores(tables: np.ndarray, bias: float, codes: np.ndarray, *, chunk: int = 8192) -> np.ndarray:
    """Scores ``float32 (n,)`` of library codes ``uint8 (n, L // 8)`` from :func:`byte_tables`."""
    codes = as_codes(codes, n_bits=tables.shape[0] * 8, argument="library codes")
    out = np.empty(codes.shape[0], np.float32)
    flat = np.ascontiguousarray(tables, np.float32).ravel()
    offsets = np.arange(tables.shape[0], dtype=np.int32) * 256  # byte j's value v is flat[256 j + v]
    for s in range(0, codes.shape[0], chunk):
        out[s:s + chunk] = np.take(flat, codes[s:s + chunk].astype(np.int32) + offsets).sum(1) + bias
    return out


def min_distances(anchors: np.ndarray, codes: np.ndarray, *, chunk: int = 8192) -> np.ndarray:
    """Hamming distance ``float32 (n,)`` of each code to its nearest anchor."""
    out = np.empty(codes.shape[0], np.float32)
    for s in range(0, codes.shape[0], chunk):
        out[s:s + chunk] = hamming_distances(anchors, codes[s:s + chunk]).min(0)
    return out


def combined(nb: np.ndarray, d_min: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The membership score ``float32``: ``z(nb) - z(d_min)`` with ``scale = (mean nb, std nb, mean d, std d)``."""
    return ((nb - scale[0]) / scale[1] - (d_min - scale[2]) / scale[3]).astype(np.float32)


def base_scores(weights: np.ndarray, bias: float, scale: np.ndarray, anchors: np.ndarray,
                codes: np.ndarray) -> np.ndarray:
    """The two terms ``z(nb) - z(d_min)`` ``float32 (n,)`` of library codes ``uint8 (n, L // 8)`` for one class."""
    codes = as_codes(codes, n_bits=weights.shape[0], argument="library codes")
    return combined(scores(byte_tables(weights), bias, codes), min_distances(anchors, codes), scale)


def negative_term(negatives: np.ndarray | None, codes: np.ndarray, stats: np.ndarray | None) -> np.ndarray | float:
    """``pull * z(d_neg)``: how far each code is from its nearest marked negative, standardised over the
    background (``stats = (mean, std, pull)``); 0 without negatives."""
    if negatives is None or stats is None or not len(negatives) or float(stats[2]) == 0.0:
        return 0.0
    return (float(stats[2]) * (min_distances(negatives, codes) - float(stats[0])) / float(stats[1])).astype(np.float32)


def feedback_weights(positives: np.ndarray, negatives: np.ndarray, background, *, C: float = FEEDBACK_C,
                     directions: int = FEEDBACK_DIRECTIONS) -> tuple[np.ndarray, float, float]:
    """Per-bit weights ``float32 (L,)`` of a logistic regression of the positives against the marked
    negatives and the background (taken as negatives, weighted :data:`FEEDBACK_WEIGHTS`), fitted in
    the background's top ``directions`` principal directions (the same ranking as on all bits, at a
    fraction of the cost) and folded back onto the bits; with the mean and deviation of their
    scores over the background (to standardise them). Deterministic (lbfgs)."""
    from sklearn.linear_model import LogisticRegression

    bg = Background.of(background)
    V = bg.principal_directions(min(directions, max(1, len(bg) - 1), bg.n_bits)).astype(np.float32)
    mu = bg.mean()
    S_bg = bg.signed()[:CALIBRATION]
    Z = np.vstack([(signed_bits(positives) - mu) @ V, (signed_bits(negatives) - mu) @ V, (S_bg - mu) @ V])
    y = np.r_[np.ones(len(positives)), np.zeros(len(negatives) + len(S_bg))]
    w_pos, w_neg, w_bg = FEEDBACK_WEIGHTS
    sw = np.r_[np.full(len(positives), w_pos), np.full(len(negatives), w_neg), np.full(len(S_bg), w_bg)]
    clf = LogisticRegression(C=C, max_iter=300).fit(Z, y, sample_weight=sw)
    w = (V @ clf.coef_[0].astype(np.float32)).astype(np.float32)
    s_bg = S_bg @ w
    return w, float(s_bg.mean()), max(float(s_bg.std()), 1e-6)


def feedback_term(arrays: dict, c: int, codes: np.ndarray) -> np.ndarray | float:
    """``mix * z(w . f)``: the feedback weights' score of library codes (0 without marked negatives)."""
    if "member_feedback" not in arrays or float(arrays["member_feedback_stats"][c][2]) == 0.0:
        return 0.0
    mean, std, mix = (float(v) for v in arrays["member_feedback_stats"][c])
    return (mix * (scores(byte_tables(arrays["member_feedback"][c]), 0.0, codes) - mean) / std).astype(np.float32)


def member_scores(arrays: dict, c: int, anchors: np.ndarray, codes: np.ndarray,
                  negatives: np.ndarray | None = None) -> np.ndarray:
    """Membership scores ``float32 (n,)`` of class ``c`` of library codes ``uint8 (n, L // 8)``: the
    two terms of the module doc, plus, with marked ``negatives``, the nearness-to-a-negative term
    and the feedback weights' term."""
    codes = as_codes(codes, n_bits=arrays["member_weights"].shape[1], argument="library codes")
    base = base_scores(arrays["member_weights"][c], float(arrays["member_bias"][c]), arrays["member_scale"][c],
                       anchors, codes)
    stats = arrays["member_negative"][c] if "member_negative" in arrays else None
    return (base + negative_term(negatives, codes, stats) + feedback_term(arrays, c, codes)).astype(np.float32)


def diffused_order(scores: np.ndarray, codes: np.ndarray, *, anchors: np.ndarray,
                   negatives: np.ndarray | None, scale: tuple[float, float], anchor_scores: np.ndarray,
                   negative_scores: np.ndarray | None = None, pool: int | None = None, knn: int | None = None,
                   alpha: float | None = None, seed_weight: float | None = None) -> np.ndarray:
    """Ranking scores ``float32 (n,)`` of items with membership ``scores (n,)`` and library ``codes``
    after label propagation from the marks (Zhou et al. 2004; Iscen et al. CVPR 2017) among the
    ``pool`` best: a symmetric k-NN graph on the first :data:`GRAPH_BITS` library bits joins those
    items, the positives (``anchors``) and the marked ``negatives``; each node starts at its score
    standardised by the background's ``scale`` (mean, deviation: ``member_score_scale``), the
    positives (``anchor_scores``) ``+seed_weight``, the negatives ``-seed_weight``, and
    ``g = alpha S g + (1 - alpha) y0`` is iterated (``S``: the normalised graph). The pool's items are
    re-ordered by ``g`` and given the pool's own scores in that order (so scores, and the
    probabilities calibrated on them, still fall with the rank); the rest keep theirs. Ties by row."""
    pool = DIFFUSION_POOL if pool is None else pool
    knn = DIFFUSION_KNN if knn is None else knn
    alpha = DIFFUSION_ALPHA if alpha is None else alpha
    beta = DIFFUSION_SEED if seed_weight is None else seed_weight
    scores = np.asarray(scores, np.float32)
    n = len(scores)
    if n < 2:
        return scores.copy()
    top = np.lexsort((np.arange(n), -scores))[:pool]
    negatives = np.zeros((0, codes.shape[1]), np.uint8) if negatives is None else negatives
    neg_s = np.zeros(0, np.float32) if negative_scores is None else np.asarray(negative_scores, np.float32)
    anchor_scores = np.asarray(anchor_scores, np.float32)
    # the marks in a canonical order (by code), so that the graph (its ties) does not depend on the
    # order they were given in
    a_order, n_order = _by_code(anchors), _by_code(negatives)
    anchors, anchor_scores = anchors[a_order], anchor_scores[a_order]
    negatives, neg_s = negatives[n_order], neg_s[n_order] if len(neg_s) else neg_s
    width = min(GRAPH_BITS // 8, codes.shape[1])
    nodes = np.ascontiguousarray(np.vstack([codes[top], anchors, negatives])[:, :width])
    m, a = len(top), len(anchors)
    D = hamming_distances(nodes, nodes).astype(np.float32)
    np.fill_diagonal(D, np.inf)
    k = min(knn, len(nodes) - 1)
    nn = np.argpartition(D, k - 1, axis=1)[:, :k]
    W = np.zeros((len(nodes), len(nodes)), np.float32)
    W[np.repeat(np.arange(len(nodes)), k), nn.ravel()] = 1.0
    W = np.maximum(W, W.T)
    dinv = 1.0 / np.sqrt(np.maximum(W.sum(1), 1e-9))
    S = W * dinv[:, None] * dinv[None, :]
    mu, sd = float(scale[0]), max(float(scale[1]), 1e-6)
    y0 = np.concatenate([(scores[top] - mu) / sd, (np.asarray(anchor_scores, np.float32) - mu) / sd + beta,
                         (neg_s - mu) / sd - beta]).astype(np.float32)
    g = y0.copy()
    for _ in range(DIFFUSION_ITERATIONS):
        g = alpha * (S @ g) + (1 - alpha) * y0
    out = scores.copy()
    order = top[np.lexsort((top, -g[:m]))]  # the pool by diffused value, ties by row
    out[order] = np.sort(scores[top])[::-1]
    return out


def _by_code(codes: np.ndarray) -> np.ndarray:
    """The order that sorts codes ``uint8 (n, B)`` lexicographically by their bytes."""
    return np.lexsort(codes.T[::-1]) if len(codes) else np.zeros(0, np.int64)


def fit_membership(codes: np.ndarray, classes_of: np.ndarray, n_classes: int, *, background,
                   negatives: np.ndarray | None = None, prior: float = PRIOR,
                   negative_pull: float | None = None) -> dict[str, np.ndarray]:
    """The membership model of each class: ``member_weights float32 (C, L)``, ``member_bias
    float32 (C,)``, ``member_scale float32 (C, 4)`` (standardisation of the two terms),
    ``member_platt float32 (C, 3)`` (Platt's ``a, b`` and Elkan-Noto's ``c``), ``member_curve float32
    (C, 2, CURVE_POINTS)`` (each class's scores and their probabilities, see the module doc).

    Args:
        codes: library codes ``uint8 (n, L // 8)`` of the labeled examples.
        classes_of: ``int (n,)`` class index of each example.
        background: unlabeled library codes of the store (the negatives' prior), or a
            :class:`~milvus_hash.encoders.ugh.background.Background` of them.
        negatives: library codes of given negatives; the other classes of a task count as negatives too.
        negative_pull: weight of the nearness-to-a-marked-negative term (default :data:`NEGATIVE_PULL`).
    """
    from ..encoders.ugh.calibration import platt_fit

    L = codes.shape[1] * 8
    W = np.zeros((n_classes, L), np.float32)
    bias = np.zeros(n_classes, np.float32)
    platt = np.zeros((n_classes, 3), np.float32)
    scale = np.zeros((n_classes, 4), np.float32)
    curves = np.zeros((n_classes, 2, CURVE_POINTS), np.float32)
    neg_stats = np.zeros((n_classes, 3), np.float32)
    fb_weights = np.zeros((n_classes, L), np.float32)
    fb_stats = np.zeros((n_classes, 3), np.float32)
    score_scale = np.zeros((n_classes, 2), np.float32)
    pull = NEGATIVE_PULL if negative_pull is None else float(negative_pull)
    background = Background.of(background, n_bits=L)
    S_bg = background.signed()[:CALIBRATION]
    for c in range(n_classes):
        pos = codes[classes_of == c]
        others = codes[classes_of != c]
        neg = others if negatives is None else np.vstack([others, negatives]) if len(others) else negatives
        q = background_frequency(background, neg if len(neg) else None)
        W[c], bias[c] = log_odds_weights(pos, q, prior=prior)
        # one product on the background's cached ±1 codes: the log-odds and the dot products with
        # the positives (exact integers: the Hamming distances)
        P = S_bg @ np.hstack([W[c][:, None], signed_bits(pos).T])
        nb_bg = (P[:, 0] + bias[c]).astype(np.float32)
        d_bg = ((L - P[:, 1:]) / 2).min(1).astype(np.float32)
        scale[c] = (nb_bg.mean(), max(nb_bg.std(), 1e-6), d_bg.mean(), max(d_bg.std(), 1e-6))
        marked = negatives if negatives is not None and len(negatives) else None
        extra = None
        if marked is not None:
            dn = min_distances(marked, background.codes[:CALIBRATION])
            neg_stats[c] = (dn.mean(), max(dn.std(), 1e-6), pull)
            fb_weights[c], m_fb, s_fb = feedback_weights(pos, marked, background)
            fb_stats[c] = (m_fb, s_fb, FEEDBACK_MIX)
        parts = {"member_feedback": fb_weights, "member_feedback_stats": fb_stats}

        def extra(x):  # the marks' two terms
            return negative_term(marked, x, neg_stats[c]) + feedback_term(parts, c, x)
        # Platt on leave-one-out scores of the positives against the background and negatives
        s_pos = loo_scores(pos, q, prior, scale[c]) if len(pos) > 1 else \
            base_scores(W[c], bias[c], scale[c], pos, pos)
        s_bg = combined(nb_bg, d_bg, scale[c])
        s_neg_base = base_scores(W[c], bias[c], scale[c], pos, neg) if len(neg) else np.zeros(0, np.float32)
        if extra is not None:
            s_pos = s_pos + extra(pos)
            s_bg = s_bg + extra(background.codes[:CALIBRATION])
            s_neg_base = s_neg_base + extra(neg) if len(neg) else s_neg_base
        s_neg = np.concatenate([s_bg, s_neg_base])
        score_scale[c] = (float(np.mean(s_bg)), max(float(np.std(s_bg)), 1e-6))
        S = np.concatenate([s_pos, s_neg])[:, None]
        T = np.concatenate([np.ones(len(s_pos), bool), np.zeros(len(s_neg), bool)])[:, None]
        a, b0 = platt_fit(S, T)
        g_pos = probabilities(np.array([a[0], b0[0], 1.0]), s_pos)
        platt[c] = (a[0], b0[0], max(float(g_pos.mean()), 1e-6))
        curves[c] = calibration_curve(s_bg, s_pos, platt[c])
    return {"member_weights": W, "member_bias": bias, "member_scale": scale, "member_platt": platt,
            "member_curve": curves, "member_negative": neg_stats, "member_feedback": fb_weights,
            "member_feedback_stats": fb_stats, "member_score_scale": score_scale}


def loo_scores(pos: np.ndarray, q: np.ndarray, prior: float, scale: np.ndarray) -> np.ndarray:
    """The score ``float64 (n,)`` of each positive under the model of the others (leave-one-out),
    all at once: the others' bit counts are the total minus the positive's own bits."""
    bits = unpack_bits(pos).astype(np.float64)                      # (n, L)
    n = bits.shape[0] - 1
    p = (bits.sum(0) - bits + prior * q) / (n + prior)             # (n, L): each row without its positive
    lq = _logit(q)
    w = ((_logit(p) - lq) / 2.0).astype(np.float32)
    b = (np.log(p) + np.log1p(-p) - np.log(q) - np.log1p(-q)).sum(1) / 2.0
    nb = np.einsum("ij,ij->i", (2 * bits - 1).astype(np.float32), w) + b.astype(np.float32)
    d = hamming_distances(pos, pos).astype(np.float32)
    np.fill_diagonal(d, np.inf)
    return combined(nb.astype(np.float32), d.min(1), scale).astype(np.float64)


def calibration_curve(s_bg: np.ndarray, s_pos: np.ndarray, platt: np.ndarray) -> np.ndarray:
    """The curve ``float32 (2, CURVE_POINTS)`` (scores, probabilities) of one class from the
    background's scores ``s_bg`` and the positives' leave-one-out scores ``s_pos`` (module doc)."""
    s_bg = np.sort(np.asarray(s_bg, np.float64))
    s_pos = np.asarray(s_pos, np.float64)
    top = max(float(s_bg[-1]), float(s_pos.max())) + 3 * max(float(s_pos.std()), POSITIVE_SPREAD)
    grid = np.linspace(float(s_bg[0]) - 1.0, top, CURVE_POINTS)
    if len(s_pos) < MIN_SPREAD_POSITIVES:
        return np.stack([grid, _platt(platt, grid)]).astype(np.float32)
    share, mu1, sd1, mu0, sd0 = score_mixture(s_bg, s_pos)
    # above the members' mean their density is held at its peak: a score further above the
    # background is never less likely a member's (with the normal's own decay, a narrower members'
    # normal made the probability fall again and the curve's running maximum flat: the top 10 of a
    # category all showed one value. Measured on held-out training images, n = 5, pixels: the top
    # 10's mean probability 0.55 -> 0.72 where 76% are members, precision of p >= 0.5 0.55 -> 0.64)
    f_1 = share * np.exp(-0.5 * ((np.minimum(grid, mu1) - mu1) / sd1) ** 2) / sd1
    f_0 = (1.0 - share) * np.exp(-0.5 * ((grid - mu0) / sd0) ** 2) / sd0
    prob = f_1 / np.maximum(f_1 + f_0, 1e-300)
    # non-decreasing: from the non-members' mean up by a running maximum, and below it by a running
    # minimum towards the left (far below, both densities vanish and their ratio means nothing)
    m = int(np.searchsorted(grid, mu0))
    prob[:m + 1] = np.minimum.accumulate(prob[:m + 1][::-1])[::-1]
    prob[m:] = np.maximum.accumulate(prob[m:])
    return np.stack([grid, prob]).astype(np.float32)


def score_mixture(s_bg: np.ndarray, s_pos: np.ndarray, *, iterations: int = 100) -> tuple[float, ...]:
    """``(pi, mu_1, sd_1, mu_0, sd_0)``: the background's scores as a mixture of members
    ``N(mu_1, sd_1)`` (share ``pi``) and non-members ``N(mu_0, sd_0)``. The non-members are the bulk,
    so their normal is the background's median and the deviation from its median absolute deviation
    (fixed: EM that also moves it fits the real scores' skew and runs off, to probabilities >= 0.9 for
    900 of 3,000 items at precision 0.4); ``pi``, ``mu_1`` and ``sd_1`` come from EM with the
    positives' scores counted as members (``sd_1`` at least :data:`POSITIVE_SPREAD`), started from
    ``pi`` = twice the background's share above the positives' median."""
    s_bg, s_pos = np.asarray(s_bg, np.float64), np.asarray(s_pos, np.float64)
    floor = 1.0 / len(s_bg)
    mu0 = float(np.median(s_bg))
    sd0 = max(1.4826 * float(np.median(np.abs(s_bg - mu0))), 1e-6)
    share = min(0.5, max(2.0 * float(np.mean(s_bg > np.median(s_pos))), floor))
    mu1, sd1 = float(s_pos.mean()), max(float(s_pos.std()), POSITIVE_SPREAD)
    f0 = np.exp(-0.5 * ((s_bg - mu0) / sd0) ** 2) / sd0
    for _ in range(iterations):
        f1 = share * np.exp(-0.5 * ((s_bg - mu1) / sd1) ** 2) / sd1
        r = f1 / np.maximum(f1 + (1.0 - share) * f0, 1e-300)
        share = min(0.5, max(float(r.mean()), floor))
        total = r.sum() + len(s_pos)
        mu1 = float((r @ s_bg + s_pos.sum()) / total)
        sd1 = max(float(np.sqrt((r @ (s_bg - mu1) ** 2 + ((s_pos - mu1) ** 2).sum()) / total)), POSITIVE_SPREAD)
    return share, mu1, sd1, mu0, sd0


def _platt(platt: np.ndarray, s: np.ndarray) -> np.ndarray:
    z = float(platt[0]) * np.asarray(s, np.float64) + float(platt[1])
    return np.minimum(0.5 * (1.0 + np.tanh(0.5 * z)) / float(platt[2]), 1.0)


def probabilities(calibration: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Membership probabilities ``float64`` of scores ``s`` from one class's calibration: a curve
    ``(2, CURVE_POINTS)`` (``member_curve``), or Platt's ``(a, b, c)`` (``member_platt``, categories
    defined before the curve existed): the sigmoid divided by ``c``, clipped to 1."""
    calibration = np.asarray(calibration)
    if calibration.ndim == 2:
        return np.interp(np.asarray(s, np.float64), calibration[0].astype(np.float64),
                         calibration[1].astype(np.float64))
    return _platt(calibration, s)


def class_calibration(arrays: dict, c: int) -> np.ndarray:
    """Class ``c``'s calibration among a category's arrays: its curve, else its Platt parameters."""
    return arrays["member_curve"][c] if "member_curve" in arrays else arrays["member_platt"][c]


__all__ = ["CALIBRATION", "CURVE_POINTS", "NEGATIVE_PULL", "NEGATIVE_WEIGHT", "PRIOR", "background_frequency",
           "base_scores", "byte_tables", "diffused_order", "negative_term",
           "calibration_curve", "class_calibration", "combined", "fit_membership", "log_odds_weights", "member_scores",
           "min_distances", "probabilities", "score_mixture", "scores"]
