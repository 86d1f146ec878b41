"""The demo's one-page HTML report: the numbers and figures a person wants first, in one self-contained file.

Order: headline numbers, error vs real budget, per-class accuracy (before/after the bias fix), what the renders
look like next to real digits, the gap summary, then the full table and how to reproduce it.
"""

from __future__ import annotations

import base64
import html
import io
import os
from typing import Any

import numpy as np

from trainer.bench import digits_data as dd


def _png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _file_uri(path: str) -> str:
    with open(path, "rb") as f:
        return _png_data_uri(f.read())


def _fig_uri(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return _png_data_uri(buf.getvalue())


def per_class_figure(results: dict[str, Any]) -> str | None:
    """Per-class test accuracy with 95% CIs: real only and real + synthetic at the smallest budget, and after
    the bias fix. Weak classes chosen by the planner are marked."""
    fix = results.get("bias_fix")
    if not fix:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [("real + synthetic (before)", fix["before"]), ("+ bias-fix renders (after)", fix["after"])]
    if fix.get("real_only"):
        series.insert(0, ("real only", fix["real_only"]))
    fig, ax = plt.subplots(figsize=(7.2, 4.0), dpi=110)
    width = 0.8 / len(series)
    x = np.arange(10)
    for k, (label, ests) in enumerate(series):
        means = np.array([e["mean"] for e in ests])
        err = np.array([[e["mean"] - e["lo"] for e in ests], [e["hi"] - e["mean"] for e in ests]])
        ax.bar(x + (k - (len(series) - 1) / 2) * width, means, width, yerr=err, capsize=2, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{d}*" if d in fix["weak_classes"] else str(d) for d in range(10)])
    for d, tick in enumerate(ax.get_xticklabels()):
        if d in fix["weak_classes"]:
            tick.set_color("crimson")
    ax.set_xlabel("digit (* weak class: more renders in the bias fix)")
    ax.set_ylabel("test accuracy (real)")
    ax.set_ylim(0, 1.0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
    ax.set_title(
        f"Per-class accuracy at {fix['budget']} real images (before/after: mean of {fix.get('seeds', 1)} "
        "training seeds), 95% bootstrap CI",
        fontsize=9,
    )
    fig.tight_layout()
    return _fig_uri(fig)


def samples_figure(bench_dir: str, per_class: int = 3) -> str | None:
    """Rows per digit: rendered crops (RGB), the same crops in the real form (8x8, 17 levels), real digits."""
    import json

    from PIL import Image

    syn_dir, raw_dir = os.path.join(bench_dir, "synthetic"), os.path.join(bench_dir, "renders", "synthetic")
    real_dir = os.path.join(bench_dir, "real", "val")
    ann_path = os.path.join(raw_dir, "annotations.json")
    if not (os.path.isdir(syn_dir) and os.path.isfile(ann_path) and os.path.isdir(real_dir)):
        return None
    with open(ann_path, encoding="utf-8") as f:
        coco = json.load(f)
    images = {im["id"]: im for im in coco["images"]}
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    syn_imgs, syn_labels, syn_names = dd.read_imagefolder(syn_dir)
    real_imgs, real_labels, _ = dd.read_imagefolder(real_dir)
    by_name = {n: i for i, n in enumerate(syn_names)}
    from PIL import ImageDraw

    cell, gap, top, pad = 44, 12, 18, 3  # pad: white space between cells so neighbouring digits never merge
    step = cell + pad
    group = step * per_class + gap
    sheet = Image.new("RGB", (3 * group - gap, top + step * 10), "white")
    draw = ImageDraw.Draw(sheet)
    for g, title in enumerate(("renders", "real form", "real digits")):
        draw.text((g * group + 2, 3), title, fill=(60, 60, 60))
    for d in range(10):
        y = top + d * step
        anns = [a for a in coco["annotations"] if cats.get(a["category_id"]) == str(d) and f"ann{a['id']}" in by_name]
        for k, ann in enumerate(anns[:per_class]):
            im = images[ann["image_id"]]
            rgb = Image.open(os.path.join(raw_dir, "images", os.path.basename(im["file_name"]))).convert("RGB")
            x0, y0, w, h = ann["bbox"]
            side = max(w, h) * 1.3
            cx, cy = x0 + w / 2, y0 + h / 2
            crop = rgb.crop((int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2)))
            sheet.paste(crop.resize((cell, cell), Image.BILINEAR), (k * step, y))
            sheet.paste(_digit_tile(syn_imgs[by_name[f"ann{ann['id']}"]], cell), (group + k * step, y))
        for k, r in enumerate(real_imgs[real_labels == d][:per_class]):
            sheet.paste(_digit_tile(r, cell), (2 * group + k * step, y))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return _png_data_uri(buf.getvalue())


def _digit_tile(values: np.ndarray, cell: int) -> Any:
    """An 8x8 digit (0..16) as a ``cell``-pixel tile, drawn dark ink on light grey like a scanned form."""
    from PIL import Image

    grey = np.round(235.0 - np.asarray(values, np.float64) * 235.0 / dd.LEVELS).astype(np.uint8)
    return Image.fromarray(grey, mode="L").resize((cell, cell), Image.NEAREST).convert("RGB")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ci(e: dict[str, Any]) -> str:
    return (
        f"{_pct(e['accuracy'] if 'accuracy' in e else e['mean'])} "
        f"<span class=ci>[{_pct(e['ci_lo'] if 'ci_lo' in e else e['lo'])}, "
        f"{_pct(e['ci_hi'] if 'ci_hi' in e else e['hi'])}]</span>"
    )


def headline(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(title, value html, note) cards."""
    cells = results["cells"]
    cards = []
    syn = next((c for c in cells if c["training_set"] == "synthetic"), None)
    if syn:
        cards.append(
            (
                "Synthetic only, tested on real digits",
                _ci(syn),
                f"{syn['n_synthetic']} rendered digits, no real image in training",
            )
        )
    target = results.get("target", {})
    b = target.get("smallest_budget")
    real = next((c for c in cells if c["training_set"] == "real" and c["budget"] == str(b)), None)
    mixed = next((c for c in cells if c["training_set"] == "real+synthetic" and c["budget"] == str(b)), None)
    if real and mixed:
        delta = mixed["accuracy"] - real["accuracy"]
        cards.append((f"{b} real images: real only", _ci(real), "the baseline"))
        cards.append(
            (
                f"{b} real images: real + synthetic",
                _ci(mixed),
                f"{'+' if delta >= 0 else ''}{100 * delta:.1f} points vs real only",
            )
        )
    met = target.get("met")
    cards.append(
        (
            "Target",
            "met" if met else ("not met" if met is False else "n/a"),
            "real+synthetic beats real-only at every budget &le; 100, CIs separated at the smallest",
        )
    )
    fix = results.get("bias_fix")
    if fix:
        weakest = sorted(fix["weak_classes"], key=lambda c: fix["before"][c]["mean"])[:3]
        parts = [f"digit {c}: {_pct(fix['before'][c]['mean'])} &rarr; {_pct(fix['after'][c]['mean'])}" for c in weakest]
        more = len(fix["weak_classes"]) - len(weakest)
        note = (
            f"{fix['extra_frames']} extra renders of the weak classes ({', '.join(map(str, fix['weak_classes']))}); "
            f"mean of {fix.get('seeds', 1)} training seeds; all classes {_pct(fix['before_overall']['mean'])} "
            f"&rarr; {_pct(fix['after_overall']['mean'])}"
        )
        if more > 0:
            note += f"; the {len(weakest)} weakest shown"
        cards.append(("Bias fix, per-class test accuracy", "<br>".join(parts), note))
    return cards


def gap_section(gap: dict[str, Any] | None, gap_report: str | None) -> str:
    if not gap:
        return "<p>No gap analysis was run.</p>"
    rows = gap.get("metadata", [])[:6]
    body = "".join(
        f"<tr><td>{html.escape(r['label'])}</td><td>{r['bhattacharyya']:.3f}</td>"
        f"<td>{r['synthetic_median']:.3g}</td><td>{r['real_median']:.3g}</td></tr>"
        for r in rows
    )
    from trainer.gap.analyze import FEATURE_MEASURES

    feats = gap.get("features", {}).get("image", {})
    frows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{feats[key]:.3g}</td></tr>"
        for key, label in FEATURE_MEASURES
        if isinstance(feats.get(key), (int, float))
    )
    link = f' Full report: <a href="{html.escape(gap_report)}">{html.escape(gap_report)}</a>.' if gap_report else ""
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in gap.get("warnings", []))
    return (
        "<p>Synthetic digits (after preprocessing into the real form) vs the real train pool, per metadata: "
        "1-D Bhattacharyya distance, largest gap first." + link + "</p>"
        "<table><tr><th>metadata</th><th>D<sub>B</sub></th><th>synthetic median</th><th>real median</th></tr>"
        + body
        + "</table>"
        + (
            "<p class=small>Feature space, image level (see the warning below for what the extractor can see):</p>"
            f"<table class=small><tr><th>measure</th><th>value</th></tr>{frows}</table>"
            if frows
            else ""
        )
        + (f"<ul class=small>{warn}</ul>" if warn else "")
    )


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#222}
h1{font-size:24px;margin-bottom:4px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
.sub{color:#666;margin-top:0}.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;min-width:200px;flex:1}
.card .t{font-size:12px;color:#666}.card .v{font-size:22px;font-weight:600;margin:4px 0}
.card .n{font-size:12px;color:#444}.ci{font-size:13px;color:#777;font-weight:400}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}.small{font-size:12px;color:#555}
code{background:#f3f3f3;padding:1px 4px;border-radius:3px}
"""


def build_report(
    results: dict[str, Any],
    bench_dir: str,
    gap: dict[str, Any] | None,
    gap_report: str | None,
    command: str,
    seconds: float,
) -> str:
    """The HTML text of the demo report."""
    cards = "".join(
        f"<div class=card><div class=t>{t}</div><div class=v>{v}</div><div class=n>{n}</div></div>"
        for t, v, n in headline(results)
    )
    plot = f'<img src="{_file_uri(results["plot"])}" width=560>' if os.path.isfile(results["plot"]) else ""
    per_class = per_class_figure(results)
    per_class_img = f'<img src="{per_class}" width=620>' if per_class else "<p>No bias fix was run.</p>"
    samples = samples_figure(bench_dir)
    samples_html = (
        f'<img src="{samples}"><p class=small>Per row one digit: rendered crops, the same crops after '
        "preprocessing into the real form (grey, Otsu ink, 32x32 fit, 4x4 ink counts: 8x8, 17 levels), and real "
        "digits from the val set (8x8 digits drawn dark on light for reading; the classifier sees ink = high).</p>"
        if samples
        else "<p>No samples.</p>"
    )
    with open(results["table_md"], encoding="utf-8") as f:
        table_md = f.read()
    table_rows = [ln.strip("|").split("|") for ln in table_md.strip().splitlines()[2:]]
    head = (
        "<tr>"
        + "".join(
            f"<th>{h}</th>"
            for h in ("training set", "real budget", "real", "synthetic", "accuracy", "95% CI", "n test")
        )
        + "</tr>"
    )
    table = (
        "<table>"
        + head
        + "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>" for r in table_rows)
        + "</table>"
    )
    s = results["scale_settings"]
    split = results["split"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Blendset demo: digits</title>
<style>{STYLE}</style></head><body>
<h1>Blendset demo: do rendered digits help on real handwritten digits?</h1>
<p class=sub>Scale <b>{results["scale"]}</b>, seed {results["seed"]}; real data: scikit-learn's 1797 handwritten
digits (UCI optdigits), split once (seed {results["split_seed"]}): pool {split["pool"]}, val {split["val"]},
test {split["test"]} (never trained on). Every number is test accuracy on real digits with a 95% bootstrap CI.
This invocation took {seconds / 60:.1f} min (steps already finished in the output folder are reused).</p>
<div class=cards>{cards}</div>
<h2>Error vs number of real training images</h2>
<div class=row>{plot}<div style="max-width:560px">{table}
<p class=small>Same classifier ({s["model"]} at {s["image_size"]} px, {s["steps"]} steps, class-balanced batches)
for every line; (c) draws half of every batch from the renders.</p></div></div>
<h2>Per-class accuracy and the bias fix</h2>{per_class_img}
<h2>Renders next to real digits</h2>{samples_html}
<h2>Gap summary</h2>{gap_section(gap, gap_report)}
<h2>Reproduce</h2><p><code>{html.escape(command)}</code> &mdash; results in <code>{html.escape(bench_dir)}</code>
(<code>table.csv</code>, <code>results.json</code>, run folders under <code>runs/</code>).</p>
</body></html>
"""
