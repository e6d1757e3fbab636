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

const REMOTE = /^\s*(https?:)?\/\//i;
const CSS_REMOTE_URL = /url\(\s*['"]?\s*(https?:)?\/\//gi;

/**
 * How many remote resources (images, backgrounds, stylesheets) the HTML would load.
 * The HTML is parsed with DOMParser, which is inert: nothing in it runs or loads.
 */
export function countRemote(html) {
  if (!html) return 0;
  const doc = new DOMParser().parseFromString(html, "text/html");
  let n = 0;
  for (const node of doc.querySelectorAll("img[src], image, input[src], video[poster], [background], source[src], source[srcset], img[srcset], link[href]")) {
    if (node.localName === "link" && !/stylesheet/i.test(node.getAttribute("rel") || "")) continue;
    const value = node.getAttribute("src") || node.getAttribute("href") || node.getAttribute("poster")
      || node.getAttribute("background") || node.getAttribute("xlink:href") || node.getAttribute("srcset") || "";
    if (REMOTE.test(value)) n += 1;
  }
  for (const node of doc.querySelectorAll("style")) n += (node.textContent.match(CSS_REMOTE_URL) || []).length;
  return n;
}
