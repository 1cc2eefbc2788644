"""The report's figures (matplotlib, drawn off-screen into PNG files).

- :func:`plot_lines`: mAP against the number of labeled examples or the code length, one line
  per method, error bars = std over draws or seeds;
- :func:`plot_pr_curves`: precision against recall of Hamming-ball retrieval, radius 0 to B;
- :func:`plot_bit_montage`: the UGH paper's Fig. 7: for a few library bits, the images most
  confidently on each side of the bit's hyperplane.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_lines(rows: dict, path: str | Path, *, title: str, xlabel: str, ylabel: str = "mAP",
               key: str = "map", log_x: bool = False) -> Path:
    """``rows``: ``{x: {method: {key, key_std}}}`` (a protocol's ``by_shots`` or ``by_length``)."""
    plt = _plt()
    xs = sorted(rows, key=float)
    methods = list(dict.fromkeys(m for x in xs for m in rows[x]))
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for i, m in enumerate(methods):
        pts = [(float(x), rows[x][m][key], rows[x][m].get(f"{key}_std", 0.0)) for x in xs if m in rows[x]]
        if not pts:
            continue
        x, y, e = (np.array(v) for v in zip(*pts))
        style = "-" if m.startswith(("UGH default", "UTH")) else "--"
        ax.errorbar(x, y, yerr=e, marker="o", ms=4, capsize=3, linestyle=style,
                    linewidth=2.4 if style == "-" else 1.3, label=m, color=plt.cm.tab10(i % 10))
    if log_x:
        ax.set_xscale("log", base=2)
    ax.set_xticks([float(x) for x in xs])
    ax.set_xticklabels([str(x) for x in xs])
    return _finish(plt, fig, ax, path, title=title, xlabel=xlabel, ylabel=ylabel)


def plot_feedback(res: dict, path: str | Path, *, title: str = "Feedback protocol: mAP after each round") -> Path:
    """One panel a number of positives n: each method's mAP (± std) against the round of marks.
    ``res``: :meth:`~milvus_hash.eval.feedback.FeedbackProtocol.protocol`'s result."""
    plt = _plt()
    shots = list(res["by_shots"])
    fig, axes = plt.subplots(1, len(shots), figsize=(4.6 * len(shots), 4.4), dpi=120, squeeze=False, sharey=True)
    names = sorted({m for n in shots for m in res["by_shots"][n]}, key=lambda m: (not m.startswith("UGH"), m))
    colour = {m: plt.cm.tab10(i % 10) for i, m in enumerate(names)}  # one colour a method in every panel
    for ax, n in zip(axes[0], shots):
        rows = res["by_shots"][n]
        for m, per in sorted(rows.items(), key=lambda kv: -kv[1][-1]["map"]):
            r = np.arange(len(per))
            y = np.array([v["map"] for v in per])
            e = np.array([v["map_std"] for v in per]) / np.sqrt(max(1, len(res.get("classes", [])) * res["draws"]))
            ugh = m.startswith("UGH")
            ax.errorbar(r, y, yerr=e, marker="o", ms=4, capsize=3, linestyle="-" if ugh else "--",
                        linewidth=2.4 if ugh else 1.2, label=m, color=colour[m])
        ax.set_xticks(range(res["rounds"] + 1))
        ax.set_title(f"n = {n} positives")
        ax.set_xlabel(f"round (marks of the top {res['per_round']} unseen)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mAP of the class (± s.e.m.)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def _finish(plt, fig, ax, path, *, title: str, xlabel: str, ylabel: str) -> Path:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_pr_curves(curves: dict, path: str | Path, *, title: str) -> Path:
    """``curves``: ``{method: metrics.pr_curve(...)}``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 5.5), dpi=120)
    for i, (m, c) in enumerate(curves.items()):
        ok = np.asarray(c["retrieving"]) > 0
        ax.plot(np.asarray(c["recall"])[ok], np.asarray(c["precision"])[ok], marker=".", ms=4,
                linewidth=2.4 if m.startswith(("UGH default", "UTH")) else 1.3, label=m, color=plt.cm.tab10(i % 10))
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    return _finish(plt, fig, ax, path, title=title, xlabel="recall (Hamming radius 0 to B)", ylabel="precision")


def plot_bit_montage(images, scores: np.ndarray, bits, path: str | Path, *, per_side: int = 8,
                     title: str = "Library bits: the images most confidently on each side") -> Path:
    """One row per bit: ``per_side`` images with the lowest score (bit 0), a gap, the highest (bit 1).

    ``images``: ``uint8 (n, H, W)`` or ``(n, H, W, 3)`` or a sequence of PIL images; ``scores``
    ``float (n, len(bits))`` (a library's calibrated outputs for those bits).
    """
    plt = _plt()
    scores = np.asarray(scores)
    rows = len(bits)
    fig, axes = plt.subplots(rows, 2 * per_side + 1, figsize=(0.9 * (2 * per_side + 1), 1.0 * rows + 0.8),
                             dpi=120, squeeze=False)
    for r, b in enumerate(bits):
        order = np.argsort(scores[:, r], kind="stable")
        picks = list(order[:per_side]) + [None] + list(order[::-1][:per_side])
        for c, i in enumerate(picks):
            ax = axes[r, c]
            ax.axis("off")
            if i is None:
                ax.text(0.5, 0.5, f"bit {b}", ha="center", va="center", fontsize=8)
                continue
            im = np.asarray(images[int(i)])
            ax.imshow(im, cmap="gray" if im.ndim == 2 else None, vmin=0, vmax=255)
    fig.suptitle(f"{title}\nleft: bit 0 (lowest output), right: bit 1 (highest)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


__all__ = ["plot_bit_montage", "plot_lines", "plot_pr_curves"]
