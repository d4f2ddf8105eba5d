// The Viewer's timeline chart: per face track a top-label strip (label written in it) over stacked class
// probabilities on a 0–100% axis, then face coverage as a 0–100% lane with the no-face spans shaded and labelled,
// audio presence and a time axis whose ticks never overlap. A playhead follows the video; hovering or focusing the
// chart shows every value at that time. Smoothing changes only the strip (the server's label_smoothed). In a project
// (labelling on) each lane gets a row of the spans people labelled (their label written in them; overlapping spans
// marked "!" with a dashed outline) and the span being chosen (in/out) is shaded over the lane.
import { NO_FACE, color, inkOn, labelText, pct } from "./util.js";

const INK = "#1d2330", MUTED = "#5b6475", GRID = "#d5d9e0", SHADE = "#eceef2";
const H = { top: 6, strip: 20, area: 84, labels: 20, gap: 14, coverage: 46, audio: 16, axis: 26, right: 40 };
const CONFLICT = "#b0301f";

/** rows of one track in time order, each covering [start_s, until) where until is the next window's start */
function segments(rows) {
  const sorted = [...rows].sort((a, b) => a.start_s - b.start_s);
  return sorted.map((r, i) => ({ row: r, from: r.start_s, until: i + 1 < sorted.length ? Math.min(r.end_s, sorted[i + 1].start_s) : r.end_s }));
}

const isNoFace = (r) => r.label === NO_FACE;
/** A window's face track: its track_id (a file with one face has no such column: track 0); null without a face */
export const trackOf = (r) => (r.track_id == null ? (isNoFace(r) ? null : 0) : r.track_id < 0 ? null : r.track_id);

/** The label the strip shows: the server's smoothed label (predict/smoothing.py) when smoothing is on. */
const shownLabel = (r, smooth) => (smooth && r.label_smoothed != null ? r.label_smoothed : r.label);

export class TimelineChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.rows = []; this.labels = []; this.span = 1; this.smooth = 0; this.names = {}; this.threshold = null;
    this.time = 0; this.hoverTime = null; this.base = null; this.lanes = [];
    this.labelling = false; this.spans = []; this.selection = null;  // spans: {track_id, start_s, end_s, label, conflict}
  }

  /** The labels' track number of a lane (a video without face tracks: 0, the whole frame). */
  static laneTrack(id) { return id ?? 0; }

  /** The lane at y (CSS pixels from the canvas top), or null. */
  laneAt(y) { return this.lanes.find((l) => y >= l.y && y < l.y + l.height) || null; }

  /** The face tracks (lanes) and, per lane, its display rows (windows with no face at all belong to every lane). */
  tracks() {
    const ids = [...new Set(this.rows.map(trackOf).filter((t) => t !== null))].sort((a, b) => a - b);
    const lanes = ids.length ? ids : [null];
    return lanes.map((id) => {
      const mine = this.rows.filter((r) => trackOf(r) === id || trackOf(r) === null);
      return { id, rows: segments(mine).map((s) => s.row) };
    });
  }

  laneName(id) {
    if (id === null) return "expression";
    return this.names[String(id)] || `face ${id}`;
  }

  /** x in CSS pixels of time t */
  x(t) { return Math.round(this.left + (t / this.span) * (this.rightX - this.left)); }  // whole pixels: no seams
  t(x) { return Math.min(this.span, Math.max(0, ((x - this.left) / (this.rightX - this.left)) * this.span)); }

  draw() {
    const canvas = this.canvas;
    const width = canvas.clientWidth;
    if (!width) return;
    const tracks = this.tracks();
    this.left = width < 520 ? 78 : 112;
    this.rightX = width - H.right;
    // each lane's labels row: one sub-row per layer of overlapping spans
    const packs = tracks.map((t) => this.packSpans(TimelineChart.laneTrack(t.id)));
    const laneHs = packs.map((p) => H.strip + 2 + H.area + (this.labelling ? p.layers * H.labels + 2 : 0));
    const height = H.top + laneHs.reduce((a, h) => a + h + H.gap, 0) + H.coverage + H.gap + H.audio + H.axis;
    const dpr = window.devicePixelRatio || 1;
    canvas.style.height = `${height}px`;
    canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, width, height);
    ctx.font = "12px system-ui, sans-serif"; ctx.textBaseline = "middle";
    Object.assign(canvas.dataset, { left: this.left, right: this.rightX, t0: 0, t1: this.span });
    const plotW = this.rightX - this.left;
    this.lanes = [];
    let y = H.top;
    tracks.forEach((track, i) => {
      this.lanes.push({ id: track.id, y, height: laneHs[i], name: this.laneName(track.id) });
      this.drawLane(ctx, track.rows, y, plotW);
      if (this.labelling) this.drawSpans(ctx, packs[i], y + H.strip + 2 + H.area + 2, plotW);
      y += laneHs[i] + H.gap;
    });
    this.coverageY = y;
    this.drawCoverage(ctx, y, plotW);
    y += H.coverage + H.gap;
    this.drawAudio(ctx, y, plotW);
    y += H.audio;
    this.drawAxis(ctx, y);
    this.base = ctx.getImageData(0, 0, canvas.width, canvas.height);
    this.drawCursor();
  }

  drawLane(ctx, rows, y, plotW) {
    const segs = segments(rows);
    const areaTop = y + H.strip + 2, areaBottom = areaTop + H.area;
    // probability axis (right): 0, 50, 100 %
    ctx.fillStyle = MUTED; ctx.textAlign = "left";
    for (const [v, label] of [[1, "100%"], [0.5, "50%"], [0, "0%"]]) {
      const yy = areaBottom - v * H.area;
      ctx.fillRect(this.rightX, yy, 4, 1);
      ctx.fillText(label, this.rightX + 6, Math.min(Math.max(yy, areaTop + 5), areaBottom - 5));
    }
    ctx.fillStyle = "#fff";
    for (const s of segs) {
      const x0 = this.x(s.from), w = Math.max(1, this.x(s.until) - x0);
      if (isNoFace(s.row)) {
        hatch(ctx, x0, y, w, H.strip + 2 + H.area);
        continue;
      }
      let base = areaBottom;
      for (const c of this.labels) {
        const h = (s.row[`p_${c}`] || 0) * H.area;
        ctx.fillStyle = color(c);
        ctx.fillRect(x0, base - h, w, h); base -= h;
      }
    }
    // the top-label strip: runs of one label, the label written where it fits
    for (const run of runs(segs, (s) => shownLabel(s.row, this.smooth))) {
      const x0 = this.x(run.from), w = Math.max(1, this.x(run.until) - x0);
      const label = run.value;
      const fill = isNoFace({ label }) ? "#6b7280" : color(label);
      ctx.fillStyle = fill; ctx.fillRect(x0, y, w, H.strip);
      const text = labelText(label);
      if (ctx.measureText(text).width + 8 <= w) {
        ctx.fillStyle = inkOn(fill); ctx.textAlign = "center";
        ctx.fillText(text, x0 + w / 2, y + H.strip / 2 + 1);
      }
      if (isNoFace({ label }) && w > 60) {
        ctx.fillStyle = INK; ctx.textAlign = "center";
        ctx.fillText("no face", x0 + w / 2, areaTop + H.area / 2);
      }
    }
    ctx.textAlign = "left";
    ctx.strokeStyle = GRID; ctx.lineWidth = 1;
    ctx.strokeRect(this.left + 0.5, areaTop + 0.5, plotW - 1, H.area - 1);
    ctx.strokeStyle = "rgba(255,255,255,.7)"; ctx.beginPath();  // the 50% gridline (the dashed line is the face threshold)
    ctx.moveTo(this.left, areaBottom - 0.5 * H.area + 0.5); ctx.lineTo(this.rightX, areaBottom - 0.5 * H.area + 0.5);
    ctx.stroke();
  }

  /** The labelled spans of one track in layers: each span in the first layer where it overlaps no other, so that
   * overlapping spans stand one above the other and none hides another. */
  packSpans(track) {
    const spans = this.spans.filter((sp) => String(sp.track_id) === String(track)).sort((a, b) => a.start_s - b.start_s);
    const ends = [], layer = new Map();
    for (const s of spans) {
      let k = ends.findIndex((end) => end <= s.start_s);
      if (k < 0) { k = ends.length; ends.push(0); }
      ends[k] = s.end_s; layer.set(s, k);
    }
    return { spans, layer, layers: Math.max(1, ends.length) };
  }

  /** A track's labelled spans under its lane: white boxes outlined in the class colour with the label written in
   * them; a span that overlaps another is outlined dashed in red and marked "!". */
  drawSpans(ctx, pack, y, plotW) {
    const h = H.labels;
    ctx.fillStyle = "#f3f5f8"; ctx.fillRect(this.left, y, plotW, pack.layers * h);
    ctx.fillStyle = MUTED; ctx.textAlign = "left";
    ctx.fillText("labels", this.rightX + 6, y + h / 2);
    for (const s of pack.spans) {
      const x0 = this.x(s.start_s), w = Math.max(2, this.x(s.end_s) - x0), top = y + pack.layer.get(s) * h;
      ctx.fillStyle = "#fff"; ctx.fillRect(x0, top + 1, w, h - 2);
      ctx.lineWidth = 2;
      ctx.strokeStyle = s.conflict ? CONFLICT : color(s.label);
      ctx.setLineDash(s.conflict ? [4, 2] : []);
      ctx.strokeRect(x0 + 1, top + 2, w - 2, h - 4);
      ctx.setLineDash([]);
      const text = `${s.conflict ? "! " : ""}${s.label}`;
      if (ctx.measureText(text).width + 8 <= w) {
        ctx.fillStyle = s.conflict ? CONFLICT : INK; ctx.textAlign = "center";
        ctx.fillText(text, x0 + w / 2, top + h / 2 + 1);
        ctx.textAlign = "left";
      }
    }
    ctx.lineWidth = 1;
  }

  coverageRows() {
    // per window start: the largest face coverage over tracks (a face found in any track)
    const byStart = new Map();
    for (const r of this.rows) {
      const prev = byStart.get(r.start_s);
      if (!prev || (r.face_coverage ?? 0) > (prev.face_coverage ?? 0)) byStart.set(r.start_s, r);
    }
    return segments([...byStart.values()]);
  }

  drawCoverage(ctx, y, plotW) {
    const segs = this.coverageRows();
    ctx.fillStyle = INK; ctx.textAlign = "left";
    ctx.fillText("face found", 6, y + 12);
    ctx.fillStyle = MUTED; ctx.fillText(this.left < 100 ? "(% frames)" : "(% of frames)", 6, y + 28);
    for (const s of segs) {
      const x0 = this.x(s.from), w = Math.max(1, this.x(s.until) - x0);
      if (s.row.label === NO_FACE || (s.row.face_coverage ?? 0) === 0) hatch(ctx, x0, y, w, H.coverage);
      const h = (s.row.face_coverage ?? 0) * H.coverage;
      ctx.fillStyle = "#3b6fb6"; ctx.fillRect(x0, y + H.coverage - h, w, h);
    }
    for (const run of runs(segs, (s) => s.row.label === NO_FACE || (s.row.face_coverage ?? 0) === 0)) {
      const x0 = this.x(run.from), w = this.x(run.until) - x0;
      if (run.value && w > 50) { ctx.fillStyle = INK; ctx.textAlign = "center"; ctx.fillText("no face", x0 + w / 2, y + H.coverage * 0.75); }
    }
    ctx.textAlign = "left";
    if (this.threshold != null) {
      const yy = y + H.coverage - this.threshold * H.coverage;
      ctx.strokeStyle = INK; ctx.setLineDash([4, 3]); ctx.beginPath();
      ctx.moveTo(this.left, yy + 0.5); ctx.lineTo(this.rightX, yy + 0.5); ctx.stroke(); ctx.setLineDash([]);
    }
    ctx.strokeStyle = GRID; ctx.strokeRect(this.left + 0.5, y + 0.5, plotW - 1, H.coverage - 1);
    ctx.fillStyle = MUTED;
    ctx.fillText("100%", this.rightX + 6, y + 5); ctx.fillText("0%", this.rightX + 6, y + H.coverage - 5);
  }

  drawAudio(ctx, y, plotW) {
    ctx.fillStyle = INK; ctx.textAlign = "left"; ctx.fillText("audio", 6, y + H.audio / 2);
    for (const s of this.coverageRows()) {
      const x0 = this.x(s.from), w = Math.max(1, this.x(s.until) - x0);
      if (s.row.has_audio) { ctx.fillStyle = "#4b5565"; ctx.fillRect(x0, y + 3, w, H.audio - 6); }
      else hatch(ctx, x0, y, w, H.audio);
    }
    ctx.strokeStyle = GRID; ctx.strokeRect(this.left + 0.5, y + 0.5, plotW - 1, H.audio - 1);
  }

  drawAxis(ctx, y) {
    const fmt = this.span >= 60 ? (t) => `${Math.floor(t / 60)}:${String(Math.round(t % 60)).padStart(2, "0")}` : (t) => `${+t.toFixed(1)} s`;
    const widest = ctx.measureText(fmt(this.span)).width + 18;
    const pxPerS = (this.rightX - this.left) / this.span;
    const step = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600].find((s) => s * pxPerS >= widest) || 7200;
    ctx.fillStyle = MUTED; ctx.textAlign = "center";
    const last = this.rightX - widest / 2;
    for (let i = 0; i * step <= this.span + 1e-9; i++) {
      const xx = this.x(i * step);
      ctx.fillRect(xx, y, 1, 4);
      if (xx <= last + 1 || i === 0) ctx.fillText(fmt(i * step), Math.max(xx, this.left + widest / 2 - 9), y + 14);
    }
    ctx.textAlign = "left";
    ctx.fillText("time", 6, y + 14);
  }

  drawCursor() {
    if (!this.base) return;
    const ctx = this.canvas.getContext("2d");
    ctx.putImageData(this.base, 0, 0);
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const h = this.canvas.clientHeight;
    if (this.hoverTime != null) {
      ctx.fillStyle = "#5b6475"; ctx.fillRect(this.x(this.hoverTime) - 0.5, 0, 1, h);
    }
    const sel = this.selection;
    const lane = sel && this.lanes.find((l) => TimelineChart.laneTrack(l.id) === sel.track);
    if (lane && (sel.from != null || sel.to != null)) {
      const a = sel.from ?? sel.to, b = sel.to ?? sel.from;
      const x0 = this.x(Math.min(a, b)), x1 = this.x(Math.max(a, b));
      ctx.fillStyle = "rgba(36, 72, 168, 0.16)"; ctx.fillRect(x0, lane.y, Math.max(2, x1 - x0), lane.height);
      ctx.fillStyle = "#2448a8"; ctx.textAlign = "center";
      for (const [t, name] of [[sel.from, "in"], [sel.to, "out"]]) {
        if (t == null) continue;
        ctx.fillRect(this.x(t) - 1, lane.y, 2, lane.height);
        ctx.fillText(name, this.x(t), lane.y + lane.height + 6);
      }
      ctx.textAlign = "left";
    }
    ctx.fillStyle = "#c0392b"; ctx.fillRect(this.x(this.time) - 1, 0, 2, h);
  }

  /** The rows at time t, one per lane, with the lane's name */
  valuesAt(t) {
    return this.tracks().map((track) => {
      const seg = segments(track.rows).find((s) => s.from <= t && t < s.until) ||
        (t >= this.span - 1e-6 ? segments(track.rows).at(-1) : null);
      return { name: this.laneName(track.id), row: seg ? seg.row : null };
    });
  }

  /** Every value at time t, in words */
  describe(t) {
    const parts = [`${t.toFixed(1)} s`];
    let shared = null;
    for (const { name, row } of this.valuesAt(t)) {
      if (!row) { parts.push(`${name}: no window`); continue; }
      shared = shared || row;
      if (row.label === NO_FACE) { parts.push(`${name}: no face (no label)`); continue; }
      const probs = this.labels.map((c) => `${c} ${pct(row[`p_${c}`])}`).join(", ");
      const conf = row.confidence == null ? "" : ` at ${pct(row.confidence)} confidence`;
      const smoothed = this.smooth && row.label_smoothed != null ? `, smoothed over ${this.smooth} s: ${labelText(row.label_smoothed)}` : "";
      parts.push(`${name}: ${labelText(row.label)}${conf}${smoothed} (${probs})`);
    }
    if (shared) parts.push(`face found in ${pct(shared.face_coverage)} of frames`, shared.has_audio ? "audio" : "no audio");
    return parts.join(" · ");
  }
}

/** consecutive items with the same key merged: [{value, from, until}] */
function runs(segs, key) {
  const out = [];
  for (const s of segs) {
    const v = key(s);
    const last = out.at(-1);
    if (last && last.value === v && Math.abs(last.until - s.from) < 1e-6) last.until = s.until;
    else out.push({ value: v, from: s.from, until: s.until });
  }
  return out;
}

function hatch(ctx, x, y, w, h) {
  ctx.save();
  ctx.beginPath(); ctx.rect(x, y, w, h); ctx.clip();
  ctx.fillStyle = SHADE; ctx.fillRect(x, y, w, h);
  ctx.strokeStyle = "#c4c9d2"; ctx.lineWidth = 1; ctx.beginPath();
  for (let i = -h; i < w; i += 7) { ctx.moveTo(x + i, y + h); ctx.lineTo(x + i + h, y); }
  ctx.stroke();
  ctx.restore();
}
