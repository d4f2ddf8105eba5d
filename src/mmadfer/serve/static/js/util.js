// Shared helpers of the web app's modules: DOM building, the JSON API, formatting, the class palette.
export const $ = (sel) => document.querySelector(sel);

/** A DOM element: attrs (class, text, style as "a:b;c:d" through the CSSOM since the CSP forbids style attributes,
 * on<event> listeners, other attributes), then children. */
export function el(tag, attrs = {}, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "style") setStyle(node, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== false && v != null) node.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids) if (kid != null && kid !== false) node.append(kid);
  return node;
}

export function setStyle(node, decls) {
  for (const decl of decls.split(";")) {
    const i = decl.indexOf(":");
    if (i > 0) node.style.setProperty(decl.slice(0, i).trim(), decl.slice(i + 1).trim());
  }
}

export async function api(path, options = {}) {
  const res = await fetch(path, { credentials: "same-origin", ...options });
  const body = res.headers.get("content-type")?.includes("json") ? await res.json() : await res.text();
  if (!res.ok) throw new Error(typeof body === "object" ? body.detail ?? res.statusText : body || res.statusText);
  return body;
}

/** Seconds as m:ss.s */
export const clock = (s) => `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;
/** A duration in words-ish: "12 s", "3 min 05 s" */
export const duration = (s) => (s < 60 ? `${Math.round(s)} s` : `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, "0")} s`);
export const pct = (x, digits = 0) => (x == null || Number.isNaN(x) ? "–" : `${(x * 100).toFixed(digits)}%`);

// Okabe–Ito: distinguishable with the common colour-vision deficiencies; the label is always written as well.
export const OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
export const NO_FACE = "no_face";
export const UNCERTAIN = "uncertain";
const SPECIAL = { [NO_FACE]: "#8a8f99", [UNCERTAIN]: "#b9bdc6" };

export const app = { info: null, labels: [] };  // filled at start from /api/info

export function color(label) {
  if (SPECIAL[label]) return SPECIAL[label];
  const i = app.labels.indexOf(label);
  return OKABE_ITO[Math.max(0, i) % OKABE_ITO.length];
}
/** What a label reads as on the page ("no face" rather than the file's no_face). */
export const labelText = (label) => (label === NO_FACE ? "no face" : label ?? "–");
/** Black or white text on a background colour, whichever contrasts more. */
export function inkOn(hex) {
  const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
  const lum = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  return (lum + 0.05) / 0.05 > 1.05 / (lum + 0.05) ? "#000" : "#fff";
}

/** The model banner the server writes for a demo, synthetic or unrecorded model ("" for none). */
export const modelBanner = (info) => info.model?.banner || "";
