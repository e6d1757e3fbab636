// Turn a message's HTML into a safe srcdoc for a sandboxed iframe.
//
// Defence in depth, outermost first:
//  1. the iframe has `sandbox` without allow-scripts: no script in the message can run,
//     whatever the markup says; no forms, no top navigation, links open in a new tab;
//  2. the srcdoc starts with a CSP <meta>: default-src 'none', images only from data:,
//     this server's part URLs and (when the person allows it) http(s);
//  3. the markup is parsed with DOMParser (inert: nothing runs, nothing loads) and cleaned
//     here: scripts, event-handler attributes, javascript: URLs, frames, forms' actions,
//     <meta refresh> and <base> are removed; remote images are swapped for a placeholder
//     until allowed; cid: references point at the message's inline parts.
//
// Why styles travel separately: a srcdoc document inherits the application page's CSP,
// and that policy (rightly) forbids inline styles. So style attributes and <style>
// blocks are lifted out here and applied after load through the CSSOM (element.style
// and constructed stylesheets), which CSP does not govern. That needs the frame to be
// same-origin with the page (allow-same-origin) -- safe without allow-scripts, since
// nothing inside the frame can execute.

const DROP_ELEMENTS = "script, noscript, iframe, frame, frameset, object, embed, applet, base, portal, "
  + "link:not([rel~='stylesheet']), meta[http-equiv]";
const URL_ATTRS = ["href", "src", "action", "formaction", "xlink:href", "background", "poster", "data"];
const REMOTE = /^\s*(https?:)?\/\//i;
const SAFE_LINK = /^\s*(https?:|mailto:|tel:|#)/i;
const BLOCKED_PIXEL =
  "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E";
const STYLE_ATTR = "data-pr-style";
// Messages without their own background are drawn on white, as mail clients do.
const BASE_CSS = "html{background:#fff;color:#111}body{margin:12px;overflow-wrap:anywhere}";
const CSS_URL = /url\(\s*(['"]?)(.*?)\1\s*\)/gi;

/** Result of preparing a message's HTML. */
export class Prepared {
  constructor(srcdoc, remoteCount, inlineStyles, sheets) {
    this.srcdoc = srcdoc;
    this.remoteCount = remoteCount;
    this.inlineStyles = inlineStyles; // style attribute text, by data-pr-style index
    this.sheets = sheets; // <style> block text, in document order
  }
}

/**
 * Build the srcdoc for one message.
 * @param {string} html the message's HTML body
 * @param {{id: string, inline: Array, allowRemote: boolean, partUrl: (id, part) => string}} opts
 */
export function prepareHtml(html, { id, inline = [], allowRemote = false, partUrl }) {
  const doc = new DOMParser().parseFromString(html || "", "text/html");
  const cids = new Map();
  for (const part of inline) {
    if (part.ContentID) cids.set(part.ContentID.replace(/^<|>$/g, "").toLowerCase(), partUrl(id, part.PartID));
  }
  let remote = 0;
  const inlineStyles = [];

  const rewriteUrl = (value) => {
    const v = (value || "").trim();
    if (/^cid:/i.test(v)) {
      const key = decodeURIComponent(v.slice(4)).replace(/^<|>$/g, "").toLowerCase();
      return cids.get(key) || BLOCKED_PIXEL;
    }
    if (REMOTE.test(v)) {
      remote += 1;
      return allowRemote ? v : BLOCKED_PIXEL;
    }
    if (/^data:image\//i.test(v)) return v;
    return BLOCKED_PIXEL;
  };
  const rewriteCss = (css) => css.replace(CSS_URL, (_m, _q, inner) => `url("${rewriteUrl(inner)}")`)
    .replace(/@import[^;]*;?/gi, "")
    .replace(/expression\s*\(/gi, "blocked(");

  for (const node of doc.querySelectorAll(DROP_ELEMENTS)) node.remove();
  // Stylesheets must come inline: a <link> would be a remote fetch.
  for (const node of doc.querySelectorAll("link")) node.remove();

  for (const node of doc.querySelectorAll("*")) {
    for (const attr of [...node.attributes]) {
      const name = attr.name.toLowerCase();
      if (name.startsWith("on")) {
        node.removeAttribute(attr.name);
      } else if (name === "style") {
        node.removeAttribute("style");
        node.setAttribute(STYLE_ATTR, String(inlineStyles.length));
        inlineStyles.push(rewriteCss(attr.value));
      } else if (name === "srcset") {
        node.removeAttribute(attr.name);
        if (!allowRemote) remote += 1;
        else node.setAttribute("srcset", attr.value);
      } else if (URL_ATTRS.includes(name)) {
        const tag = node.localName;
        if (name === "href" && (tag === "a" || tag === "area")) {
          if (!SAFE_LINK.test(attr.value)) node.removeAttribute(attr.name);
        } else if (tag === "img" || tag === "image" || name === "background" || name === "poster"
          || tag === "source" || tag === "input" || tag === "video" || tag === "audio") {
          node.setAttribute(attr.name, rewriteUrl(attr.value));
        } else {
          node.removeAttribute(attr.name);
        }
      }
    }
  }
  const sheets = [BASE_CSS];
  for (const style of doc.querySelectorAll("style")) {
    sheets.push(rewriteCss(style.textContent));
    style.remove();
  }
  for (const a of doc.querySelectorAll("a[href]")) {
    if (!a.getAttribute("href").startsWith("#")) {
      a.setAttribute("target", "_blank");
      a.setAttribute("rel", "noopener noreferrer");
    }
  }

  const origin = new URL(document.baseURI).origin;
  const img = ["data:", origin, allowRemote ? "http: https:" : ""].filter(Boolean).join(" ");
  const csp = `default-src 'none'; img-src ${img}; media-src ${img}; style-src 'unsafe-inline'; `
    + "font-src data:; form-action 'none'; base-uri 'none'";
  const head = doc.head;
  const meta = doc.createElement("meta");
  meta.setAttribute("http-equiv", "Content-Security-Policy");
  meta.setAttribute("content", csp);
  const charset = doc.createElement("meta");
  charset.setAttribute("charset", "utf-8");
  const referrer = doc.createElement("meta");
  referrer.setAttribute("name", "referrer");
  referrer.setAttribute("content", "no-referrer");
  head.prepend(charset, meta, referrer);
  if (!doc.querySelector("meta[name=viewport]")) {
    const vp = doc.createElement("meta");
    vp.setAttribute("name", "viewport");
    vp.setAttribute("content", "width=device-width, initial-scale=1");
    head.append(vp);
  }
  return new Prepared(`<!doctype html>\n${doc.documentElement.outerHTML}`, remote, inlineStyles, sheets);
}

/**
 * Apply the lifted styles once the frame has loaded (see the note at the top).
 * @param {HTMLIFrameElement} frame
 * @param {Prepared} prepared
 */
export function applyStyles(frame, prepared) {
  const doc = frame.contentDocument;
  const win = frame.contentWindow;
  if (!doc || !win) return;
  for (const node of doc.querySelectorAll(`[${STYLE_ATTR}]`)) {
    node.style.cssText = prepared.inlineStyles[Number(node.getAttribute(STYLE_ATTR))] || "";
    node.removeAttribute(STYLE_ATTR);
  }
  const sheets = [];
  for (const text of prepared.sheets) {
    const sheet = new win.CSSStyleSheet();
    sheet.replaceSync(text);
    sheets.push(sheet);
  }
  doc.adoptedStyleSheets = sheets;
}

/**
 * The sandbox tokens for the preview iframe. Deliberately no allow-scripts (never add it:
 * together with allow-same-origin it would undo the sandbox), no allow-forms, no
 * allow-top-navigation. Links may open in a new tab.
 */
export const SANDBOX = "allow-same-origin allow-popups allow-popups-to-escape-sandbox";
