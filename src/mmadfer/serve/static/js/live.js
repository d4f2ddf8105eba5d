// Live: the camera and microphone stream to the server over a WebSocket; a label (or "no face") every stride.
import { $, NO_FACE, app, color, el, labelText, pct } from "./util.js";

const live = { stream: null, ws: null, audio: null, timer: null };
const video = $("#l-video");
const FPS = 8;
export const exposed = { predictions: 0, last: null, tracks: () => [] };

function status(text) { $("#l-status").textContent = text; }

export function initLive() {
  $("#l-start").addEventListener("click", start);
  $("#l-stop").addEventListener("click", stop);
  new ResizeObserver(() => { if (live.stream && exposed.last) overlay(exposed.last); }).observe(video);
}

async function start() {
  $("#l-start").disabled = true;
  try {
    try { live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: true }); }
    catch { live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 } }); }
  } catch (e) {
    status(`No camera: ${e.message}`); $("#l-start").disabled = false; return;
  }
  exposed.tracks = () => live.stream ? live.stream.getTracks().map((t) => t.readyState) : exposed.ended || [];
  video.srcObject = live.stream;
  $("#l-stop").disabled = false;
  $("#l-stop").focus();
  $("#l-history").replaceChildren();
  exposed.predictions = 0;
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/live`);
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  const hasAudio = live.stream.getAudioTracks().length > 0;
  ws.onopen = () => {
    const t0 = performance.now();
    const now = () => (performance.now() - t0) / 1000;
    let rate = 0;
    if (hasAudio) {
      const ctx = new AudioContext();
      const source = ctx.createMediaStreamSource(live.stream);
      const proc = ctx.createScriptProcessor(4096, 1, 1);
      let next = null;
      proc.onaudioprocess = (e) => {
        const samples = e.inputBuffer.getChannelData(0);
        if (next === null) next = Math.max(0, now() - samples.length / ctx.sampleRate);
        send("A", next, new Float32Array(samples).buffer);
        next += samples.length / ctx.sampleRate;
      };
      source.connect(proc); proc.connect(ctx.destination);
      live.audio = { ctx, source, proc };
      rate = ctx.sampleRate;
    }
    ws.send(JSON.stringify({ type: "start", fps: FPS, sample_rate: rate, stride: +$("#l-stride").value || 1 }));
    const grab = el("canvas", { width: 320, height: 240 });
    live.timer = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > 2e6 || video.readyState < 2) return;
      const t = now();
      grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
      grab.toBlob(async (blob) => { if (blob) send("V", t, await blob.arrayBuffer()); }, "image/jpeg", 0.8);
    }, 1000 / FPS);
    status(`Streaming ${hasAudio ? "camera and microphone" : "camera"}; the first label comes after one window.`);
  };
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (msg.type === "prediction") show(msg);
    else if (msg.type === "ready") status(`Streaming; a label every ${msg.stride_s} s over the last ${msg.window_s} s.`);
    else if (msg.type === "error") status(`Error: ${msg.message}`);
  };
  ws.onclose = () => { if (live.stream) stop(); };
}

function send(kind, t, payload) {
  const ws = live.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  const head = new DataView(new ArrayBuffer(9));
  head.setUint8(0, kind.charCodeAt(0)); head.setFloat64(1, t, true);
  ws.send(new Blob([head.buffer, payload]));
}

function show(p) {
  exposed.predictions += 1;
  exposed.last = p;
  const noFace = p.label === NO_FACE;
  const big = $("#l-label");
  big.textContent = labelText(p.label);
  big.classList.toggle("no-face", noFace);
  big.style.setProperty("--c", noFace ? "#5b6475" : color(p.label));
  const what = noFace ? `no face in ${pct(1 - (p.face_coverage ?? 0))} of the frames: no label` :
    `confidence ${pct(p.confidence)} (the top class's probability)`;
  $("#l-meta").textContent = `${what} · latency ${p.latency_ms.toFixed(0)} ms` +
    `${!noFace && p.face_coverage != null && p.face_coverage < 1 ? ` · face in ${pct(p.face_coverage)} of frames` : ""}` +
    `${p.skipped ? ` · ${p.skipped} skipped` : ""}`;
  $("#l-bars").classList.toggle("muted", noFace);
  $("#l-bars").replaceChildren(...app.labels.map((c) => el("div", {}, el("span", { text: c }),
    el("i", { style: `--c:${color(c)};width:${((p.probs?.[c] ?? 0) * 100).toFixed(1)}%` }),
    el("span", { text: pct(p.probs?.[c]) }))));
  $("#l-history").prepend(el("tr", {}, el("td", { text: `${p.end_s.toFixed(1)} s` }), el("td", { text: labelText(p.label) }),
    el("td", { text: p.confidence == null ? "–" : p.confidence.toFixed(2) }), el("td", { text: `${p.latency_ms.toFixed(0)} ms` })));
  while ($("#l-history").children.length > 8) $("#l-history").lastChild.remove();
  overlay(p);
}

function overlay(p) {
  const box = $("#l-overlay");
  const items = [];
  if (p.label === NO_FACE) items.push(el("div", { class: "tag nf", style: "left:8px;top:8px", text: "no face" }));
  else if (p.box_x0 != null && video.videoWidth) {
    const cw = video.clientWidth, ch = video.clientHeight;
    const scale = Math.min(cw / video.videoWidth, ch / video.videoHeight);
    const w = video.videoWidth * scale, h = video.videoHeight * scale;
    const ox = (cw - w) / 2, oy = (ch - h) / 2;
    items.push(el("div", { class: "box", style: `left:${ox + p.box_x0 * w}px;top:${oy + p.box_y0 * h}px;width:${(p.box_x1 - p.box_x0) * w}px;` +
      `height:${(p.box_y1 - p.box_y0) * h}px;--c:${color(p.label)}` }, el("span", { class: "tag", text: `${labelText(p.label)} ${pct(p.confidence)}` })));
  }
  box.replaceChildren(...items);
}

function stop() {
  clearInterval(live.timer); live.timer = null;
  if (live.audio) { live.audio.proc.disconnect(); live.audio.source.disconnect(); live.audio.ctx.close(); live.audio = null; }
  if (live.stream) {
    live.stream.getTracks().forEach((t) => t.stop());  // releases the camera and microphone
    exposed.ended = live.stream.getTracks().map((t) => t.readyState);
    live.stream = null;
  }
  video.srcObject = null;
  $("#l-overlay").replaceChildren();
  if (live.ws && live.ws.readyState === WebSocket.OPEN) { live.ws.send(JSON.stringify({ type: "stop" })); live.ws.close(); }
  live.ws = null;
  $("#l-start").disabled = false; $("#l-stop").disabled = true;
  $("#l-start").focus();
  status("Camera off (released).");
}
