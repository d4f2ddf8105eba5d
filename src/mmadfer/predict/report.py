"""A one-page HTML result per video (``predict --report``): what a PoC lead can forward.

One self-contained file (:mod:`mmadfer._html`: no script, no font, nothing fetched; the chart is an inline PNG)
with, in order: what the model is (a banner for a demo or synthetic model, or when its training data is not
recorded), the summary (:func:`mmadfer.predict.summary.summarize`: dominant label, share of time per label, face
and audio found), the chart, the table of every window (the chart's text alternative), how to read the numbers, and
where they come from. Numbers are the timeline's own; nothing is recomputed from the video.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from .. import __version__
from .._html import esc, image, page, section, write_html
from .._html import table as html_table
from ..config import NO_FACE, UNCERTAIN
from .summary import summarize

__all__ = ["video_report_html", "write_video_report", "READING_GUIDE"]

#: What each column and word of a timeline means, in plain language (the report's "How to read this").
READING_GUIDE = (
    ("window", "a stretch of the video the model looks at as one piece (by default 5.12 s: 16 frames and the sound "
               "with them)"),
    ("label", "the expression the model rates most likely for that window; 'no face' where a face was found in "
              "too few of the window's frames to read one; 'uncertain' where its top probability is below the "
              "threshold that was set"),
    ("confidence", "the model's probability for its label (0–100%): how sure the model is, not how often it is "
                   "right; it is only a measured accuracy for a calibrated model (mmadfer calibrate)"),
    ("probabilities", "the model's probability for every class; they sum to 100% and are kept as the model gave "
                      "them, whatever the label"),
    ("face found", "the share of the window's sampled frames in which a face was detected"),
    ("audio found", "whether the window had a sound track"),
    ("share of time", "how much of the video (each moment counted once; with several faces, per face) carries "
                      "each label"),
)


def _pct(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}%"


def _name(label: str) -> str:
    return "no face" if label == NO_FACE else label


def _chart(table: pd.DataFrame) -> bytes | None:
    try:
        from .timeline import plot_timeline

        fig = plot_timeline(table, dpi=80)
    except ImportError:
        return None
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def video_report_html(table: pd.DataFrame, *, provenance: Mapping[str, Any] | None = None,
                      video_name: str | None = None) -> str:
    """The report page of one timeline (``provenance``: :attr:`mmadfer.Recognizer.provenance`, if known)."""
    labels = list(table.attrs.get("labels") or [c[2:] for c in table.columns if c.startswith("p_")])
    name = video_name or Path(str(table.attrs.get("video") or "video")).name
    s = summarize(table, labels)
    sections = []
    if provenance is not None:  # what the model is, first: a banner when its labels mean little or nothing is known
        cls = "banner" if provenance.get("synthetic") or not provenance.get("recorded") else "note"
        sections.append(f'<section aria-label="About the model"><p class="{cls}"><strong>About the model:</strong> '
                        f'{esc(provenance.get("note", ""))}.</p></section>')
    dominant = s["dominant_label"]
    if dominant is None:
        verdict = "No windows: nothing was predicted."
    else:
        verdict = f"Most of the time: {_name(dominant)} ({_pct(s['dominant_share'])} of the time)."
        if s["shares"].get(NO_FACE, 0) > 0 and dominant != NO_FACE:
            verdict += f" No face for {_pct(s['shares'][NO_FACE])} of the time."
    smoothed = " (smoothed labels, see below)" if s["label_column"] == "label_smoothed" else ""
    cards = "".join(f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div></div>' for k, v in (
        ("most of the time", _name(dominant) if dominant else "–"), ("face found", _pct(_frac(s["face_found_pct"]))),
        ("audio found", _pct(_frac(s["audio_found_pct"]))), ("windows", s["windows"]),
        ("length covered", f"{s['duration_s']:.1f} s")))
    shares = html_table(["label", "share of time"],
                        [[_name(k), _pct(v)] for k, v in sorted(s["shares"].items(), key=lambda kv: -kv[1])
                         if v > 0 or k not in (NO_FACE, UNCERTAIN)],
                        caption=f"Share of the time each label holds{smoothed}")
    sections.append(section("Summary", f'<p class="verdict">{esc(verdict)}</p><div class="cards">{cards}</div>'
                            + shares))
    chart = _chart(table)
    alt = (f"Timeline chart of {name}: the probability of each class over time, stacked, with the top label above "
           f"and the face found as a dashed line; every value is in the table of windows below.")
    sections.append(section("Timeline", image(chart, alt)))
    sections.append(section("Windows", _windows(table, labels)))
    guide = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in READING_GUIDE)
    if "smooth_s" in table.attrs:
        guide += (f"<dt>smoothed label</dt><dd>the top class of the probabilities averaged over "
                  f"{table.attrs['smooth_s']:g} s around each window (windows without a face left out); the "
                  f"summary uses it, the raw label and probabilities are unchanged</dd>")
    sections.append(section("How to read this", f"<dl>{guide}</dl>"))
    about = [["video", name], ["window / stride", f"{_num_s(table.attrs.get('window_s'))} / "
                                                  f"{_num_s(table.attrs.get('stride_s'))}"],
             ["classes", ", ".join(labels)], ["model file", Path(str(table.attrs.get("model") or "–")).name],
             ["mmadfer", __version__]]
    sections.append(section("Where these numbers come from", html_table(None, about) + '<p class="note">Computed on '
                            'this computer by mmadfer; nothing was uploaded.</p>'))
    return page(f"Expression timeline: {name}", f"{s['windows']} windows · {s['duration_s']:.1f} s", sections)


def _frac(pct: float) -> float:
    return pct / 100 if pct == pct else math.nan


def _num_s(x: Any) -> str:
    return f"{float(x):g} s" if x is not None else "–"


def _windows(table: pd.DataFrame, labels: list[str]) -> str:
    tracks = "track_id" in table
    smoothed = "label_smoothed" in table
    header = (["start (s)", "end (s)"] + (["face track"] if tracks else []) + ["label"]
              + (["smoothed label"] if smoothed else []) + ["confidence", "face found", "audio"] + labels)
    rows = []
    for r in table.to_dict("records"):
        rows.append([f"{r['start_s']:.2f}", f"{r['end_s']:.2f}"] + ([r["track_id"]] if tracks else [])
                    + [_name(r["label"])] + ([_name(r["label_smoothed"])] if smoothed else [])
                    + [_pct(r["confidence"]), _pct(r.get("face_coverage")), "yes" if r.get("has_audio") else "no"]
                    + [_pct(r[f"p_{c}"]) for c in labels])
    return html_table(header, rows, caption="Every window: its label, confidence and the probability of each class "
                                       "(the chart's values as text)")


def write_video_report(table: pd.DataFrame, path: str | os.PathLike, *,
                       provenance: Mapping[str, Any] | None = None, video_name: str | None = None) -> Path:
    """Write :func:`video_report_html` to ``path`` atomically."""
    return write_html(path, video_report_html(table, provenance=provenance, video_name=video_name))
