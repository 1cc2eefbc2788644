"""The Markdown report: what was run, the tables, the figures, the speed."""

from __future__ import annotations

import json
from pathlib import Path


def _cell(r: dict | None, with_pr: bool = True) -> str:
    if r is None:
        return "-"
    text = f"{r['map']:.3f} ± {r['map_std']:.3f}"
    if with_pr and "p_r2" in r:
        text += f" ({r['p_r2']:.3f})"
    return text


def _single_cell(r: dict | None, with_pr: bool = True) -> str:
    if r is None:
        return "-"
    return f"{r['map']:.3f} ± {r['map_std']:.3f} ({r['p10']:.2f}, {r['p100']:.2f})"


def table(rows: dict, *, header: str, fmt=lambda x: str(x), with_pr: bool = True,
          best_of: tuple[str, ...] = (), cell=_cell) -> list[str]:
    """``rows``: ``{x: {method: scores}}`` to a Markdown table, methods as rows, x as columns;
    ``best_of``: methods whose best column value gets a ratio line against the best other method."""
    xs = list(rows)
    methods = list(dict.fromkeys(m for x in xs for m in rows[x]))
    lines = ["| method | " + " | ".join(f"{header} {fmt(x)}" for x in xs) + " |", "|---" * (len(xs) + 1) + "|"]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(cell(rows[x].get(m), with_pr) for x in xs) + " |")
    for ours in best_of:
        if all(ours in rows[x] for x in xs):
            ratios = []
            for x in xs:
                others = [v["map"] for k, v in rows[x].items() if k != ours and not k.startswith(("UGH", "UTH"))]
                ratios.append(f"{rows[x][ours]['map'] / max(others):.2f}x" if others else "-")
            lines.append(f"| {ours} / best baseline | " + " | ".join(ratios) + " |")
    return lines


def speed_lines(speed: dict) -> list[str]:
    lines = ["| measure | value |", "|---|---|"]
    for key, value in speed.items():
        if isinstance(value, float):
            value = f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
        lines.append(f"| {key} | {value} |")
    return lines


def write_report(out_dir: str | Path, *, title: str, setup: dict, fewshot: dict | None = None,
                 unsupervised: dict | None = None, single: dict | None = None, feedback: dict | None = None,
                 speed: dict | None = None,
                 figures: list[tuple[str, str]] = (), notes: list[str] = ()) -> Path:
    """Write ``report.md`` (and ``results.json`` with every number) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = [f"# {title}", "", "## Setup", ""]
    md += [f"- **{k}**: {v}" for k, v in setup.items()]
    if fewshot:
        md += ["", "## Few-shot protocol (UGH paper)", "",
               f"Database {fewshot['n_database']:,} images, {fewshot['n_queries']:,} queries, {fewshot['draws']} "
               f"draws of the labeled examples; mAP over the full Hamming ranking (ties by database id) ± std, "
               f"precision within Hamming radius 2 in brackets; scored with {fewshot['scorer']}. References: "
               f"float features' cosine mAP {fewshot['cosine_float_map']:.3f}; all {fewshot['library_bits']:,} "
               f"library bits {fewshot['library_hamming_map']:.3f}.", ""]
        if fewshot["by_shots"]:
            md += [f"**{fewshot['n_bits']} bits, by labeled examples per class**", ""]
            md += table(fewshot["by_shots"], header="n =", best_of=("UGH default (CCA codes)",)) + [""]
        if fewshot["by_length"]:
            md += [f"**n = {fewshot['length_shots']}, by code length**", ""]
            md += table(fewshot["by_length"], header="", fmt=lambda b: f"{b} bits",
                        best_of=("UGH default (CCA codes)",)) + [""]
    if single:
        md += ["", "## Single-category protocol (n pictures of one class: find the class)", "",
               f"Database {single['n_database']:,} images; for each of {len(single['classes'])} classes and "
               f"{single['draws']} draws, n positives from the queries, the database ranked by membership; "
               f"mAP of the class over the full ranking ± std over classes and draws, P@10 and P@100 in brackets; "
               f"UGH category scored with {single['scorer']}, the {single['library_bits']:,}-bit library, "
               f"background {single['background']:,} codes of the database.", ""]
        md += table(single["by_shots"], header="n =", best_of=("UGH category (members)",),
                    cell=_single_cell) + [""]
    if feedback:
        md += ["", "## Feedback protocol (n pictures, then rounds of marking the top unseen results)", "",
               f"Database {feedback['n_database']:,} images; for each of {len(feedback['classes'])} classes and "
               f"{feedback['draws']} draws, n positives from the queries; each method shows its top "
               f"{feedback['per_round']} unmarked items a round and a simulated user marks each right or wrong; "
               f"after every round the AP of the class over the full ranking (marked positives first, marked "
               f"negatives last): mAP ± std over classes and draws. Every method runs its own loop with the "
               f"same labels.", ""]
        for n, rows in feedback["by_shots"].items():
            rounds = len(next(iter(rows.values())))
            md += [f"**n = {n}**", "", "| method | " + " | ".join(f"round {r}" for r in range(rounds)) + " |",
                   "|---|" + "---:|" * rounds]
            for name, per in sorted(rows.items(), key=lambda kv: -kv[1][-1]["map"]):
                md.append(f"| {name} | " + " | ".join(f"{v['map']:.3f} ± {v['map_std']:.3f}" for v in per) + " |")
            md.append("")
    if unsupervised:
        md += ["", "## Unsupervised protocol (UTH paper)", "",
               f"Database {unsupervised['n_database']:,} images, {unsupervised['n_queries']:,} queries; "
               f"mAP@{unsupervised['top']} ± std over seeds {unsupervised['seeds']}; scored with "
               f"{unsupervised['scorer']}." + (f" Reference: float cosine mAP@{unsupervised['top']} "
                                               f"{unsupervised['cosine_float_map']:.3f}."
                                               if "cosine_float_map" in unsupervised else ""), ""]
        md += table(unsupervised["by_length"], header="", fmt=lambda b: f"{b} bits", with_pr=False) + [""]
    if figures:
        md += ["", "## Figures", ""]
        for caption, name in figures:
            md += [f"**{caption}**", "", f"![{caption}]({name})", ""]
    if speed:
        md += ["", "## Speed and memory", ""] + speed_lines(speed) + [""]
    if notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in notes] + [""]
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n")
    (out / "results.json").write_text(json.dumps({"setup": setup, "fewshot": fewshot, "unsupervised": unsupervised,
                                                  "single": single, "feedback": feedback, "speed": speed}, indent=2, default=_jsonable))
    return path


def _jsonable(o):
    import numpy as np

    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    return str(o)


__all__ = ["speed_lines", "table", "write_report"]
