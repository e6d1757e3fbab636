// Small DOM and formatting helpers shared by the UI modules. No framework: elements are
// built with el(), text always goes through textContent (never innerHTML), so message
// data can never become markup in the application page.

/**
 * Build an element: el("button", {class: "btn", onclick: fn, "aria-label": "x"}, child...).
 * Children may be strings (text nodes), nodes, or null/false (skipped).
 */
export function el(tag, attrs = {}, ...children) {
  const node = tag === "svg" || tag === "use"
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else if (key === "text") {
      node.textContent = value;
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An inline SVG icon from the sprite in index.html. */
export function icon(name, cls = "icon") {
  const svg = el("svg", { class: cls, "aria-hidden": "true", focusable: "false" });
  svg.append(el("use", { href: `#i-${name}` }));
  return svg;
}

/** "Alice <alice@example.org>" or just the address when there is no name. */
export function formatAddress(addr) {
  if (!addr) return "";
  const name = (addr.Name || "").trim();
  const address = (addr.Address || "").trim();
  if (name && address) return `${name} <${address}>`;
  return name || address;
}

/** A short label for a sender or recipient: the name if any, else the address. */
export function shortAddress(addr) {
  if (!addr) return "";
  return (addr.Name || "").trim() || (addr.Address || "").trim();
}

export function formatAddressList(list) {
  return (list || []).map(formatAddress).filter(Boolean).join(", ");
}

const SIZE_UNITS = ["B", "KB", "MB", "GB"];

/** 1536 -> "1.5 KB". */
export function formatSize(bytes) {
  let n = Number(bytes) || 0;
  let unit = 0;
  while (n >= 1024 && unit < SIZE_UNITS.length - 1) {
    n /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${SIZE_UNITS[unit]}`;
}

// The Intl formatters are made on first use: the page's first one costs 15-90 ms in Chromium
// (ICU's locale data), which, made as this module loaded, came before the page's first
// request. main() calls warmFormats() once the first list is asked for, so that cost runs
// while the answer is on its way.
const formats = new Map();
function format(key, make) {
  let f = formats.get(key);
  if (!f) {
    f = make();
    formats.set(key, f);
  }
  return f;
}
const timeFmt = () => format("time", () => new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" }));
const dayFmt = () => format("day", () => new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" }));
const yearFmt = () =>
  format("year", () => new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" }));
const fullFmt = () => format("full", () => new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" }));
const numberFmt = () => format("number", () => new Intl.NumberFormat());

/** Make the formatters the list and the sidebar use (see above). */
export function warmFormats() {
  timeFmt();
  dayFmt();
  yearFmt();
  numberFmt();
}

/** Compact list time: "14:05" today, "Mar 3" this year, "Mar 3, 2023" before. */
export function formatListTime(iso, now = new Date()) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  if (d.toDateString() === now.toDateString()) return timeFmt().format(d);
  if (d.getFullYear() === now.getFullYear()) return dayFmt().format(d);
  return yearFmt().format(d);
}

/**
 * A Date from what the API gives: an ISO 8601 string (Mailpit's Created, Date) or a
 * number of epoch seconds (postroom's envelope Received); JavaScript counts milliseconds.
 */
export function toDate(value) {
  return typeof value === "number" ? new Date(value * 1000) : new Date(value);
}

export function formatFullTime(value) {
  const d = toDate(value);
  return Number.isNaN(d.getTime()) ? String(value || "") : fullFmt().format(d);
}

export function formatNumber(n) {
  return numberFmt().format(Number(n) || 0);
}

/** Call fn at most once per `ms`, trailing edge. */
export function debounce(fn, ms) {
  let timer = 0;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** Replace all children of a node. */
export function setChildren(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

// http(s) URLs in plain text: a run of characters that cannot end a URL in prose. One
// character class with no alternation, so matching is linear in the text.
const URL_RE = /\bhttps?:\/\/[^\s<>"'`{}|\\^[\]]+/g;
const URL_TRAIL = new Set([".", ",", ";", ":", "!", "?", ")"]);

/**
 * Plain text as text nodes with its http(s) URLs as links (opening in a new tab, without
 * the referrer). Only http and https become links: never javascript: or data:.
 */
export function linkify(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    // Sentence punctuation after a URL is not part of it; a ")" is only when one opened.
    let end = m[0].length;
    const paren = m[0].includes("(");
    while (end > 0 && URL_TRAIL.has(m[0][end - 1]) && !(paren && m[0][end - 1] === ")")) end -= 1;
    const href = m[0].slice(0, end);
    if (!href) continue;
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(el("a", { href, target: "_blank", rel: "noopener noreferrer", text: href }));
    last = m.index + href.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}
