// The HTML preview: a sandboxed iframe onto the server's /view/{ID}.html.
//
// Defence in depth, outermost first:
//  1. the iframe's `sandbox` attribute has no allow-scripts and no allow-same-origin: no
//     script in the message can run and the frame is an opaque origin (no cookies, no API);
//     no forms, no top-level navigation, no automatic refresh; links may open a new tab;
//  2. the server answers /view/{ID}.html with its own CSP: `sandbox` again, default-src
//     'none', inline styles only, images from data:, cid: parts and this server -- and
//     http(s) only with ?remote=1, which the UI adds once the person allows remote images;
//  3. the UI page itself never puts message markup into its own DOM (text only).

import { url } from "./api.js";

/**
 * Sandbox tokens for the preview iframe. Never add allow-scripts or allow-same-origin:
 * either would let a hostile message act inside or against the application.
 */
export const SANDBOX = "allow-popups allow-popups-to-escape-sandbox";

/** URL of the message's sandbox-safe HTML view (links open in a new tab). */
export function viewUrl(id, allowRemote) {
  return url(`view/${encodeURIComponent(id)}.html`, { embed: "1", remote: allowRemote ? "1" : null });
}

// src=, background=, poster=, srcset= or a stylesheet href= pointing at http(s) or "//host".
const REMOTE_ATTR = /\s(?:src|background|poster|srcset|xlink:href)\s*=\s*["']?\s*(?:https?:)?\/\//gi;
const REMOTE_LINK = /<link\b[^>]*\bhref\s*=\s*["']?\s*(?:https?:)?\/\/[^>]*>/gi;
const CSS_REMOTE_URL = /url\(\s*['"]?\s*(?:https?:)?\/\//gi;

/**
 * About how many remote resources (images, backgrounds, stylesheets) the HTML would load,
 * for the "N remote images blocked" note. Counted on the text: parsing it into a document
 * here would apply the page's CSP to the message's inline styles and fill the console
 * with violation reports. The blocking itself is the server's CSP, not this count.
 */
export function countRemote(html) {
  if (!html) return 0;
  const links = (html.match(REMOTE_LINK) || []).filter((tag) => /stylesheet/i.test(tag)).length;
  return (html.match(REMOTE_ATTR) || []).length + links + (html.match(CSS_REMOTE_URL) || []).length;
}

/** Tallest screenshot, in CSS pixels: the server's image is this tall, then cropped. */
const SHOT_HEIGHT = 6000;

/**
 * A PNG of the message's HTML at `width` CSS pixels, as Mailpit's screenshot: the server
 * sends the HTML as a self-contained SVG image (view/{ID}.svg: XHTML, cid: pictures
 * inlined, nothing remote), which is drawn on a canvas; the blank rows under the content
 * (the colour of the bottom row) are cut off. Nothing of the message enters this page's DOM.
 * @returns {Promise<Blob>}
 */
export async function screenshotPng(id, width) {
  const resp = await fetch(url(`view/${encodeURIComponent(id)}.svg`, { width: String(width), height: String(SHOT_HEIGHT) }));
  if (!resp.ok) throw new Error(`${resp.status} ${resp.statusText}`);
  // as a data: URL: Chromium taints a canvas that drew an SVG with HTML in it from any other URL
  const img = new Image();
  img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(await resp.text())}`;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = SHOT_HEIGHT;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.fillStyle = "#fff"; // a message without a background of its own is shown on white
  ctx.fillRect(0, 0, width, SHOT_HEIGHT);
  ctx.drawImage(img, 0, 0);
  const height = contentHeight(ctx.getImageData(0, 0, width, SHOT_HEIGHT).data, width, SHOT_HEIGHT);
  const out = document.createElement("canvas");
  out.width = width;
  out.height = height;
  out.getContext("2d").drawImage(canvas, 0, 0);
  return new Promise((resolve, reject) => out.toBlob((b) => (b ? resolve(b) : reject(new Error("no image"))), "image/png"));
}

/** Rows down to the last one that differs from the bottom row (at least 1). */
function contentHeight(px, width, height) {
  const row = width * 4;
  const bottom = px.subarray((height - 1) * row, height * row);
  for (let y = height - 2; y >= 0; y--) {
    const start = y * row;
    for (let i = 0; i < row; i++) if (px[start + i] !== bottom[i]) return Math.min(height, y + 2);
  }
  return 1;
}
