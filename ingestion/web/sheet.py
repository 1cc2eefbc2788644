"""Static contact sheets: ``category members ... --html OUT.html`` and ``search ... --html OUT.html``
write one self-contained HTML file (thumbnails inline), for people who stay on the command line."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import numpy as np

from .files import FileRefused, Files, origin_of


def write_contact_sheet(out, *, store, collection: str, title: str, rows: list[dict], files: Files | None = None,
                        queries: list[int] = ()) -> Path:
    """Write ``rows`` (dicts with ``id`` and any of ``rank``, ``probability``, ``distance``, ``label``,
    ``source``, ``example``) as a grid of inline thumbnails to ``out``; ``queries``: ids shown above
    as what was searched from. Pictures come from inside the folders the rows were ingested from
    only (:class:`~.files.Files`). Returns the path written (atomically)."""
    files = files or Files()
    out = Path(out)
    ids = [int(r["id"]) for r in rows] + [int(q) for q in queries]
    metas = {}
    if ids:
        rec = store.get(collection, ids=np.array(ids, np.int64), with_codes=False)
        metas = dict(zip(rec.ids.tolist(), rec.metadata))

    def img(i: int) -> str:
        o = origin_of(metas.get(i, {}))
        try:
            if o is None:
                raise FileRefused("no picture recorded")
            data = base64.b64encode(files.thumbnail(o)).decode()
            return f'<img src="data:image/jpeg;base64,{data}" width="160" height="160" alt="">'
        except FileRefused as exc:
            return f'<div class="none" title="{html.escape(str(exc))}">no picture</div>'

    def cell(r: dict) -> str:
        parts = []
        if r.get("rank") is not None:
            parts.append(f"#{int(r['rank'])}")
        if r.get("probability") is not None:
            parts.append(f"<b>{float(r['probability']):.2f}</b>")
        if r.get("distance") is not None:
            parts.append(f"<b>d {int(r['distance'])}</b>")
        if r.get("example"):
            parts.append('<span class="ex">example</span>')
        if r.get("label") not in (None, ""):
            parts.append(f'<span class="label">{html.escape(str(r["label"]))}</span>')
        source = str(r.get("source") or "")
        name = source.rsplit("/", 1)[-1] or str(r["id"])
        return (f'<figure class="{"example" if r.get("example") else ""}">{img(int(r["id"]))}<figcaption>'
                f'{" ".join(parts)}<br><span class="name" title="{html.escape(source)}">{html.escape(name)}</span>'
                f'<br><span class="id">id {int(r["id"])}</span></figcaption></figure>')

    head = ""
    if queries:
        head = ("<h2>Searched from</h2><div class='grid'>"
                + "".join(cell({"id": q, "source": ""}) for q in queries) + "</div><h2>Results</h2>")
    body = "".join(cell(r) for r in rows) or "<p>Nothing to show.</p>"
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1rem; color: #1d1d1f; }}
h1 {{ font-size: 1.2rem; }} h2 {{ font-size: 1rem; color: #666; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(168px, 1fr)); gap: .6rem; }}
figure {{ margin: 0; border: 1px solid #ddd; border-radius: 8px; padding: 4px; }}
figure.example {{ border-color: #1b7f3b; }}
img, .none {{ display: block; width: 160px; height: 160px; object-fit: contain; background: #f0f0f0; margin: auto; }}
.none {{ color: #888; text-align: center; line-height: 160px; }}
figcaption {{ font-size: 12px; }} .name, .id {{ color: #666; }} .ex {{ color: #1b7f3b; font-weight: 600; }}
.label {{ background: #eef; border-radius: 4px; padding: 0 4px; }}
</style></head>
<body><h1>{html.escape(title)}</h1>{head}<div class="grid">{body}</div></body></html>
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(doc, encoding="utf-8")
    os.replace(tmp, out)
    return out


__all__ = ["write_contact_sheet"]
