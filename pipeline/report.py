"""Self-contained HTML report per patient: trends with CIs, overlays, matched-hair map, the table.

Pure apart from reading overlay PNGs and frames it is pointed to: tables in,
an HTML string out (figures embedded as base64 PNG, no external file or
script), so the report can be mailed or attached to a record as one file.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

TREND_METRICS = [("density_per_cm2", "Hair density (/cm²)"), ("terminal_density_per_cm2", "Terminal density (/cm²)"),
                 ("mean_thickness_um", "Mean thickness (µm)"), ("vellus_share_pct", "Vellus share (%)"),
                 ("cumulative_thickness_mm_per_cm2", "Cumulative thickness (mm/cm²)"),
                 ("hairs_per_unit", "Hairs per unit")]


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend (reports are made without a display)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def trend_points(baseline_date: pd.Series, ch: pd.DataFrame) -> pd.DataFrame:
    """One metric's points in date order: the baseline at 0 (wherever ``--baseline`` put it, before or after
    other sessions), then each session's change from it with its CI half-widths, MDC and real-change flag."""
    first = pd.DataFrame({"date": pd.to_datetime(baseline_date).to_numpy()[:1], "change": [0.0], "below": [0.0],
                          "above": [0.0], "mdc": [np.nan], "real": [False]})
    rest = pd.DataFrame({"date": pd.to_datetime(ch["session_date"]).to_numpy(),
                         "change": ch["change"].to_numpy(float),
                         "below": (ch["change"] - ch["ci_low"]).clip(lower=0).to_numpy(float),
                         "above": (ch["ci_high"] - ch["change"]).clip(lower=0).to_numpy(float),
                         "mdc": ch["mdc"].to_numpy(float), "real": ch["real_change"].astype(bool).to_numpy()})
    return pd.concat([first, rest], ignore_index=True).sort_values("date", kind="stable").reset_index(drop=True)


def trend_figure(sessions: pd.DataFrame, changes: pd.DataFrame, site: str) -> str:
    """Base64 PNG: one panel per metric, the change from baseline per session with its 95% CI and the MDC band."""
    plt = _pyplot()
    s = sessions[sessions.site == site].sort_values("session_date")
    fig, axes = plt.subplots(2, 3, figsize=(12, 6))
    for ax, (metric, label) in zip(axes.ravel(), TREND_METRICS):
        ch = changes[(changes.site == site) & (changes.metric == metric) & (changes.reference == "baseline")]
        ch = ch.sort_values("session_date")
        zero = ch["reference_date"].iloc[:1] if len(ch) and "reference_date" in ch else s["session_date"].iloc[:1]
        pts = trend_points(zero, ch)
        ax.axhline(0, color="0.6", lw=0.8)
        if pts["mdc"].notna().any():  # from the first date to the last, so one follow-up still shows a band
            band = pts["mdc"].ffill().bfill().to_numpy(float)
            ax.fill_between(pts["date"], -band, band, color="0.85", step="mid", label="± MDC95")
        ax.errorbar(pts["date"], pts["change"], yerr=[pts["below"], pts["above"]], marker="o", capsize=4,
                    color="tab:blue")
        real = pts[pts["real"]]
        if len(real):
            ax.scatter(real["date"], real["change"], s=120, facecolors="none", edgecolors="tab:red",
                       label="real change")
        methods = sorted(set(ch["method"]))
        ax.set_title(f"{label}" + (f" [{'/'.join(methods)}]" if methods else ""), fontsize=10)
        ax.tick_params(axis="x", rotation=30, labelsize=8)
        if ax is axes[0, 0] and ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
    fig.suptitle(f"site {site}: change from baseline; bars = 95% CI, grey band = minimal detectable change",
                 fontsize=11)
    fig.tight_layout()
    return _png(fig)


def match_figure(frame: np.ndarray, matches: pd.DataFrame) -> str:
    """Base64 PNG: the baseline frame with persisting (green), lost (red) and gained (blue) hairs."""
    fig, ax = _pyplot().subplots(figsize=(6.4, 5.1))
    ax.imshow(frame)
    for status, colour in (("persisting", "lime"), ("lost", "red"), ("gained", "deepskyblue")):
        m = matches[matches.status == status]
        ax.scatter(m["col"], m["row"], s=60, facecolors="none", edgecolors=colour, linewidths=2,
                   label=f"{status} ({len(m)})")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_axis_off()
    return _png(fig)


def _img_tag(b64: str, alt: str, width: str = "100%", kind: str = "png") -> str:
    return f'<img alt="{html.escape(alt)}" style="width:{width}" src="data:image/{kind};base64,{b64}">'


def _file_b64(path: Path, max_width_px: int = 800) -> str | None:
    """An overlay picture, scaled to at most ``max_width_px`` wide, as base64 JPEG (keeps reports small)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return None
    if img.shape[1] > max_width_px:
        f = max_width_px / img.shape[1]
        img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return base64.b64encode(data.tobytes()).decode() if ok else None


def patient_report(patient_id: str, tables: dict[str, pd.DataFrame], *, overlays_dir: Path | None = None,
                   frames: dict[str, Path] | None = None, rule: str = "", version: str = "",
                   overlay_files: dict[str, str] | None = None) -> str:
    """The HTML page of one patient (all sites).

    Parameters
    ----------
    patient_id : str
    tables : dict
        ``tricho compare``'s tables (``sessions``, ``changes``, ``summary``,
        optionally ``field_pairs``, ``matches``).
    overlays_dir : Path, optional
        The analysis run's ``overlays/`` folder (baseline and latest overlays).
    frames : dict, optional
        Image key -> file, for the matched-hair map.
    overlay_files : dict, optional
        Image key -> its overlay's file name in ``overlays_dir``
        (:func:`pipeline.batch.overlay_names`; default :func:`~pipeline.batch.overlay_name`).
    """
    from pipeline.batch import overlay_name
    from pipeline.imageio import read_image

    esc = html.escape
    sessions = tables["sessions"][tables["sessions"].patient_id == patient_id]
    changes = tables["changes"][tables["changes"].patient_id == patient_id]
    summary = tables["summary"][tables["summary"].patient_id == patient_id]
    parts = [f"<h1>Trichoscopy course — patient {esc(patient_id)}</h1>",
             f"<p class=small>tricho-pipeline {esc(version)}. Response rule: {esc(rule)}</p>",
             "<h2>Response</h2>", "<div class=wide>"
             + summary.to_html(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-") + "</div>"]
    for site in sorted(sessions["site"].unique()):
        parts.append(f"<h2>Site {esc(site)}</h2>")
        parts.append(_img_tag(trend_figure(sessions, changes, site), f"trends {site}"))
        s = sessions[sessions.site == site].sort_values("session_date")
        parts.append(s.to_html(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-"))
        ch = changes[(changes.site == site)]
        parts.append("<h3>Changes</h3>" + ch.drop(columns=["patient_id", "site"]).to_html(
            index=False, float_format=lambda v: f"{v:.2f}", na_rep="-"))
        pairs = tables.get("field_pairs", pd.DataFrame())
        matches = tables.get("matches", pd.DataFrame())
        mine = pairs[(pairs.patient_id == patient_id) & (pairs.site == site)] if len(pairs) else pairs
        latest = mine[mine.session_date == mine.session_date.max()] if len(mine) else mine
        named = overlay_files or {}
        for r in latest.itertuples(index=False):
            if overlays_dir is not None:
                a = _file_b64(overlays_dir / named.get(r.reference_image, overlay_name(r.reference_image)))
                b = _file_b64(overlays_dir / named.get(r.image, overlay_name(r.image)))
                cells = "".join(f"<td>{_img_tag(x, n, kind='jpeg')}<br>{esc(n)}</td>"
                                for x, n in ((a, r.reference_image), (b, r.image)) if x)
                if cells:
                    parts.append(f"<h3>Field {esc(str(r.field_id))}: baseline and latest</h3>"
                                 f"<table><tr>{cells}</tr></table>")
            if frames and bool(r.registered) and r.reference_image in frames and len(matches):
                mm = matches[(matches.image == r.image) & (matches.reference_image == r.reference_image)]
                try:
                    fig = match_figure(read_image(frames[r.reference_image]), mm)
                except Exception:  # noqa: BLE001 - a missing frame only loses the map
                    continue
                parts.append(f"<h3>Field {esc(str(r.field_id))}: matched hairs (baseline frame)</h3>"
                             + _img_tag(fig, "matched hairs", "60%"))
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
             "table{border-collapse:collapse;font-size:12px;margin:0.5em 0}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}.small{font-size:12px;color:#555}"
             ".wide{overflow-x:auto}")
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Course {esc(patient_id)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
