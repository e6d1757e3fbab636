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
