"""One self-contained HTML file: tables plus PNG plots embedded as base64 (matplotlib, Agg backend).

No external scripts, styles or images, so the report opens from a mail attachment or a CI artefact folder.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

SYN_COLOR = "#1f77b4"
REAL_COLOR = "#d62728"

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;
color:#222;line-height:1.4;padding:0 16px}
h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:8px 12px;margin:10px 0}
.note{background:#eef5ff;border-left:4px solid #4a90d9;padding:8px 12px;margin:10px 0}
.grid{display:flex;flex-wrap:wrap;gap:8px}.grid figure{margin:0;width:280px}
figcaption{font-size:12px;color:#555}img{max-width:100%}.small{font-size:12px;color:#555}
.bar{display:inline-block;height:10px;background:#d62728;vertical-align:middle}
.legend-syn{color:#1f77b4;font-weight:600}.legend-real{color:#d62728;font-weight:600}
"""


def fig_to_uri(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def overlay_histogram(
    edges: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    title: str,
    log: bool,
    labels: tuple[str, str] = ("synthetic", "real"),
    xlabel: str = "value",
) -> str:
    """Two normalised histograms on shared bins, synthetic blue, real red."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3.6, 2.3))
    widths = np.diff(edges)
    for counts, color, label in ((p, SYN_COLOR, labels[0]), (q, REAL_COLOR, labels[1])):
        total = counts.sum()
        dens = counts / total if total else counts
        ax.bar(edges[:-1], dens, width=widths, align="edge", alpha=0.45, color=color, label=f"{label} (n={total})")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(f"log10 {xlabel}" if log else xlabel, fontsize=7)
    ax.set_ylabel("share", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="best")
    return fig_to_uri(fig)


def single_histogram(values: np.ndarray, title: str, log: bool) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3.6, 2.3))
    v = values[np.isfinite(values)]
    if log:
        v = np.log10(v[v > 0])
    ax.hist(v, bins=max(5, min(30, int(math.sqrt(max(len(v), 1))))), color=SYN_COLOR, alpha=0.6)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(f"log10 {title}" if log else title, fontsize=7)
    ax.tick_params(labelsize=7)
    return fig_to_uri(fig)


def scatter_projection(real: np.ndarray, synthetic: np.ndarray, title: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    ax.scatter(synthetic[:, 0], synthetic[:, 1], s=8, alpha=0.5, c=SYN_COLOR, label=f"synthetic (n={len(synthetic)})")
    ax.scatter(real[:, 0], real[:, 1], s=14, alpha=0.8, c=REAL_COLOR, marker="^", label=f"real (n={len(real)})")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.tick_params(labelsize=7)
    return fig_to_uri(fig)


# ---------------------------------------------------------------------------------------------------------------
# HTML pieces


def esc(x: Any) -> str:
    return html.escape(str(x))


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        if v != 0 and (abs(v) < 10**-digits or abs(v) >= 10**5):
            return f"{v:.{digits}g}"
        return f"{v:.{digits}f}"
    return esc(v)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[bool] | None = None) -> str:
    numeric = numeric or [False] * len(headers)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for value, num in zip(row, numeric, strict=True):
            raw = isinstance(value, RawHtml)
            text = str(value) if raw else fmt(value)
            cells.append(f'<td class="num">{text}</td>' if num else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


class RawHtml(str):
    """Marks a table cell that is already HTML."""


def figure(uri: str, caption: str) -> str:
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{esc(caption) or "plot"}">{cap}</figure>'


def box(kind: str, text: str) -> str:
    return f'<div class="{kind}">{text}</div>'


def page(title: str, sections: Sequence[str]) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>" + "".join(sections) + "</body></html>"
    )
