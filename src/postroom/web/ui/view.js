// The message view: header block plus tabs. Tabs come from a registry (registerTab):
// the built-in ones (HTML, HTML source, Text, Headers, Raw, Attachments, Envelope,
// Thread) are registered at the end of this module; other modules add theirs the same
// way (the checks' HTML Check, Link Check, Spam and Authentication tabs). Each tab
// renders on first show; the HTML preview is a sandboxed iframe.

import { api } from "./api.js";
import { SANDBOX, countRemote, screenshotPng, viewUrl } from "./preview.js";
import {
  el, formatAddress, formatAddressList, formatFullTime, formatListTime, formatSize, icon, linkify, setChildren, shortAddress,
} from "./util.js";

const RAW_DISPLAY_LIMIT = 2 * 1024 * 1024; // show at most 2 MB of source; download for the rest
const WIDTHS = [
  { key: "phone", label: "Phone", px: 375, icon: "phone" },
  { key: "tablet", label: "Tablet", px: 768, icon: "tablet" },
  { key: "desktop", label: "Desktop", px: 0, icon: "desktop" },
];

/**
 * @typedef {object} TabSpec
 * @property {string} key      unique; the tab's id is `tab-KEY`, its panel's class `panel-KEY`
 * @property {number} order    position (built-ins use 10..80 in steps of 10; pick one between)
 * @property {string | ((msg: object, view: MessageView) => string)} label
 * @property {(msg: object, view: MessageView) => boolean} [when]  shown only when true
 * @property {(panel: HTMLElement, msg: object, view: MessageView) => (void | Promise<void>)} render
 *   fills the panel; may be async (check `view.isCurrent(msg)` after each await); a thrown
 *   error or rejected promise shows "Could not load: ..." in the panel
 */

const registry = [];

/**
 * Add a tab to the message view (or replace the one with the same key). Call it when a
 * module loads; views already open pick it up on the next message (or view.refresh()).
 * @param {TabSpec} spec
 */
export function registerTab(spec) {
  const i = registry.findIndex((t) => t.key === spec.key);
  if (i >= 0) registry.splice(i, 1);
  registry.push(spec);
  registry.sort((a, b) => a.order - b.order);
}

/** The registered tabs, in order (for tests and the keyboard help). */
export function registeredTabs() {
  return registry.map((t) => t.key);
}

export class MessageView {
  /**
   * @param {{root, subject, tags, meta, tabs, panels}} nodes
   * @param {{openMessage: (id) => void, toast: (text) => void, searchTag?: (tag) => void}} app
   */
  constructor(nodes, app) {
    this.n = nodes;
    this.app = app;
    this.msg = null;
    this.tabs = [];
    this.current = "html";
    this.width = "desktop";
    this.allowRemote = new Set(); // message IDs whose remote images the person allowed
    this.threads = false; // set once the server is known to have the threads API
    this.threadSizes = new Map(); // ThreadID -> number of messages (the Thread tab needs > 1)
    nodes.tabs.addEventListener("keydown", (ev) => this.onTabKey(ev));
    nodes.tabs.addEventListener("scroll", () => this.syncTabScroll(), { passive: true });
    window.addEventListener("resize", () => this.syncTabScroll());
    // the strip gets its size only once the view is shown and laid out, which may come after
    // the frame renderTabButtons waits for (a slow machine): mark it again when it does
    new ResizeObserver(() => this.syncTabScroll()).observe(nodes.tabs);
  }

  /** Whether `msg` is still the message on screen (for async tab renderers). */
  isCurrent(msg) {
    return this.msg === msg;
  }

  /** Show a full Message (GET /api/v1/message/{ID}). */
  show(msg) {
    const same = this.msg && this.msg.ID === msg.ID;
    this.msg = msg;
    this.n.subject.textContent = msg.Subject || "(no subject)";
    this.renderTags(msg.Tags || []);
    this.renderMeta(msg);
    this.computeTabs();
    if (!same) this.current = msg.HTML ? "html" : this.tabs[0].key;
    else if (!this.tabs.some((t) => t.key === this.current)) this.current = this.tabs[0].key;
    this.renderTabs();
    this.n.root.hidden = false;
    this.probeThread(msg);
  }

  computeTabs() {
    const msg = this.msg;
    this.tabs = registry
      .filter((t) => !t.when || t.when(msg, this))
      .map((t) => ({ key: t.key, label: typeof t.label === "function" ? t.label(msg, this) : t.label, spec: t }));
  }

  /** Re-evaluate which tabs apply (a registered tab's condition changed); keeps the current tab. */
  refresh() {
    if (!this.msg) return;
    const before = this.tabs.map((t) => `${t.key}:${t.label}`).join();
    this.computeTabs();
    if (this.tabs.map((t) => `${t.key}:${t.label}`).join() === before) return;
    if (!this.tabs.some((t) => t.key === this.current)) {
      this.current = this.tabs[0].key;
      this.renderTabs();
    } else {
      this.renderTabButtons();
    }
  }

  /** Learn the size of the message's conversation: the Thread tab shows only for two or more. */
  async probeThread(msg) {
    if (!this.threads || !msg.ThreadID || this.threadSizes.has(msg.ThreadID)) return;
    try {
      const data = await api.thread(msg.ThreadID);
      this.threadSizes.set(msg.ThreadID, (data.Messages || []).length);
    } catch {
      this.threadSizes.set(msg.ThreadID, 0);
    }
    if (this.msg === msg) this.refresh();
  }

  clear() {
    this.msg = null;
    this.n.root.hidden = true;
    setChildren(this.n.panels);
  }

  renderTags(tags) {
    setChildren(this.n.tags, tags.map((t) => tagChip(t, this.app.searchTag)));
  }

  renderMeta(msg) {
    const rows = [
      ["From", formatAddress(msg.From)],
      ["To", formatAddressList(msg.To)],
      ["Cc", formatAddressList(msg.Cc)],
      ["Bcc", formatAddressList(msg.Bcc)],
      ["Reply-To", formatAddressList(msg.ReplyTo)],
      ["Date", formatFullTime(msg.Date)],
      ["Size", formatSize(msg.Size)],
    ].filter(([, v]) => v);
    setChildren(this.n.meta, rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  }

  renderTabButtons() {
    const buttons = this.tabs.map((t) =>
      el("button", {
        type: "button",
        role: "tab",
        id: `tab-${t.key}`,
        class: "tab",
        "aria-selected": t.key === this.current ? "true" : "false",
        "aria-controls": "panel",
        tabindex: t.key === this.current ? "0" : "-1",
        dataset: { tab: t.key },
        onclick: () => this.select(t.key),
        text: t.label,
      }));
    setChildren(this.n.tabs, buttons);
    requestAnimationFrame(() => this.syncTabScroll()); // once laid out (the view may just be unhidden)
  }

  renderTabs() {
    this.renderTabButtons();
    this.renderPanel();
  }

  /** Mark the strip when tabs are cut off on either side, so it shows it scrolls. */
  syncTabScroll() {
    const strip = this.n.tabs;
    const wrap = strip.parentElement;
    if (!wrap || !wrap.classList.contains("tabs-wrap")) return;
    wrap.classList.toggle("more-left", strip.scrollLeft > 2);
    wrap.classList.toggle("more-right", strip.scrollLeft + strip.clientWidth < strip.scrollWidth - 2);
  }

  select(key, focus = false) {
    if (!this.tabs.some((t) => t.key === key)) return;
    this.current = key;
    for (const b of this.n.tabs.querySelectorAll("[role=tab]")) {
      const on = b.dataset.tab === key;
      b.setAttribute("aria-selected", on ? "true" : "false");
      b.tabIndex = on ? 0 : -1;
      if (on) b.scrollIntoView({ block: "nearest", inline: "nearest" });
      if (on && focus) b.focus();
    }
    this.renderPanel();
  }

  /** Select the n-th tab (keyboard 1..9). */
  selectIndex(i) {
    if (this.tabs[i]) this.select(this.tabs[i].key);
  }

  onTabKey(ev) {
    const i = this.tabs.findIndex((t) => t.key === this.current);
    let j = -1;
    if (ev.key === "ArrowRight") j = (i + 1) % this.tabs.length;
    else if (ev.key === "ArrowLeft") j = (i - 1 + this.tabs.length) % this.tabs.length;
    else if (ev.key === "Home") j = 0;
    else if (ev.key === "End") j = this.tabs.length - 1;
    if (j >= 0) {
      ev.preventDefault();
      this.select(this.tabs[j].key, true);
    }
  }

  renderPanel() {
    const msg = this.msg;
    const tab = this.tabs.find((t) => t.key === this.current);
    const panel = el("div", {
      class: `panel panel-${this.current}`,
      id: "panel",
      role: "tabpanel",
      "aria-labelledby": `tab-${this.current}`,
      tabindex: "0",
    });
    setChildren(this.n.panels, panel);
    if (!tab) return;
    new Promise((resolve) => resolve(tab.spec.render(panel, msg, this))).catch((err) => {
      if (this.msg === msg) setChildren(panel, el("p", { class: "panel-error", text: `Could not load: ${err.message}` }));
    });
  }

  renderHtml(panel, msg) {
    const allow = this.allowRemote.has(msg.ID);
    const remoteCount = countRemote(msg.HTML);
    const frame = el("iframe", {
      class: "html-frame",
      sandbox: SANDBOX,
      referrerpolicy: "no-referrer",
      title: `HTML body of “${msg.Subject || "(no subject)"}”`,
      src: viewUrl(msg.ID, allow),
    });
    const stage = el("div", { class: `frame-stage width-${this.width}` }, frame);
    const widthButtons = WIDTHS.map((w) =>
      el("button", {
        type: "button",
        class: "seg",
        "aria-pressed": w.key === this.width ? "true" : "false",
        title: w.px ? `${w.label} (${w.px} px)` : w.label,
        "aria-label": w.px ? `${w.label} width, ${w.px} pixels` : `${w.label} width`,
        dataset: { width: w.key },
        onclick: () => {
          this.width = w.key;
          stage.className = `frame-stage width-${w.key}`;
          for (const b of panel.querySelectorAll(".seg")) b.setAttribute("aria-pressed", b.dataset.width === w.key ? "true" : "false");
        },
      }, icon(w.icon)));
    const notice = remoteCount && !allow
      ? el(
        "div",
        { class: "remote-notice", role: "note" },
        icon("image"),
        el("span", { text: `${remoteCount} remote image${remoteCount === 1 ? "" : "s"} blocked.` }),
        el("button", {
          type: "button",
          class: "btn btn-small",
          id: "allow-remote",
          onclick: () => {
            this.allowRemote.add(msg.ID);
            this.renderPanel();
          },
          text: "Load remote images",
        }),
      )
      : null;
    const shot = el("button", {
      type: "button",
      class: "btn btn-small",
      id: "screenshot-btn",
      title: "Save the HTML view as a PNG image, at the preview's width",
      onclick: async () => {
        const px = WIDTHS.find((w) => w.key === this.width)?.px || Math.round(frame.getBoundingClientRect().width) || 1024;
        shot.disabled = true;
        try {
          const blob = await screenshotPng(msg.ID, px);
          const href = URL.createObjectURL(blob);
          const a = el("a", { href, download: `${msg.ID}-${px}px.png`, hidden: true });
          document.body.append(a);
          a.click();
          a.remove();
          setTimeout(() => URL.revokeObjectURL(href), 10_000);
        } catch (err) {
          shot.title = `Could not make the screenshot: ${err.message || err}`;
        } finally {
          shot.disabled = false;
        }
      },
    }, icon("image"), "Screenshot");
    setChildren(
      panel,
      el("div", { class: "panel-bar" }, el("div", { class: "segmented", role: "group", "aria-label": "Preview width" }, widthButtons), shot, notice),
      stage,
    );
  }

  renderSource(panel, msg) {
    setChildren(panel, el("pre", { class: "raw-body html-source", text: msg.HTML || "" }));
  }

  renderText(panel, msg) {
    const text = msg.Text || "";
    setChildren(panel, text ? el("pre", { class: "text-body" }, linkify(text)) : el("p", { class: "muted", text: "This message has no plain-text part." }));
  }

  async renderHeaders(panel, msg) {
    setChildren(panel, loading());
    const headers = await api.headers(msg.ID);
    if (this.msg !== msg) return;
    const rows = [];
    for (const [name, values] of Object.entries(headers || {})) {
      for (const value of Array.isArray(values) ? values : [values]) {
        rows.push(el("tr", {}, el("th", { scope: "row", text: name }), el("td", { text: String(value) })));
      }
    }
    setChildren(panel, el("table", { class: "kv headers" }, el("caption", { class: "visually-hidden", text: "Message headers" }), el("tbody", {}, rows)));
  }

  async renderRaw(panel, msg) {
    setChildren(panel, loading());
    const raw = await api.raw(msg.ID);
    if (this.msg !== msg) return;
    const cut = raw.length > RAW_DISPLAY_LIMIT;
    setChildren(
      panel,
      el("div", { class: "panel-bar" }, el("a", { class: "btn btn-small", href: api.rawUrl(msg.ID), download: `${msg.ID}.eml` }, icon("download"), "Download .eml"),
        cut ? el("span", { class: "muted", text: `Showing the first ${formatSize(RAW_DISPLAY_LIMIT)}.` }) : null),
      el("pre", { class: "raw-body", text: cut ? raw.slice(0, RAW_DISPLAY_LIMIT) : raw }),
    );
  }

  renderAttachments(panel, msg) {
    const parts = [...(msg.Attachments || []).map((a) => [a, false]), ...(msg.Inline || []).map((a) => [a, true])];
    const cards = parts.map(([a, inline]) => {
      const name = a.FileName || a.ContentID || `part-${a.PartID}`;
      const isImage = /^image\//i.test(a.ContentType || "");
      const preview = isImage
        ? el("img", { class: "thumb", src: api.thumbUrl(msg.ID, a.PartID), alt: "", loading: "lazy", width: "180", height: "120" })
        : el("div", { class: "thumb thumb-file" }, icon("file"));
      return el(
        "li",
        { class: "attachment" },
        preview,
        el("div", { class: "att-info" },
          el("span", { class: "att-name", text: name, title: name }),
          el("span", { class: "muted", text: `${a.ContentType || "application/octet-stream"} · ${formatSize(a.Size)}${inline ? " · inline" : ""}` })),
        el("a", {
          class: "btn btn-small",
          href: api.partUrl(msg.ID, a.PartID),
          download: name,
          "aria-label": `Download ${name}`,
        }, icon("download"), "Download"),
      );
    });
    setChildren(panel, el("ul", { class: "attachments" }, cards));
  }

  async renderEnvelope(panel, msg) {
    setChildren(panel, loading());
    const env = await api.envelope(msg.ID);
    if (this.msg !== msg) return;
    const yesNo = (v) => (v === true ? "yes" : v === false ? "no" : v ? String(v) : "—");
    const rows = [
      ["MAIL FROM", env.MailFrom === "" ? "<> (null sender)" : env.MailFrom],
      ["RCPT TO", (env.RcptTo || []).join(", ")],
      ["Client", env.Peer],
      ["HELO / EHLO", env.Helo],
      ["TLS", yesNo(env.TLS)],
      ["Authenticated as", env.AuthUser || "— (no AUTH)"],
      ["SMTPUTF8", yesNo(env.SMTPUTF8)],
      // epoch seconds (formatFullTime takes numbers as seconds, strings as ISO 8601)
      ["Received", env.Received ? formatFullTime(env.Received) : ""],
    ];
    setChildren(panel, el("table", { class: "kv envelope" }, el("caption", { class: "visually-hidden", text: "SMTP envelope" }),
      el("tbody", {}, rows.map(([k, v]) => el("tr", {}, el("th", { scope: "row", text: k }), el("td", { text: v ?? "" }))))));
  }

  async renderThread(panel, msg) {
    setChildren(panel, loading());
    let data;
    try {
      data = await api.thread(msg.ThreadID);
    } catch (err) {
      if (this.msg !== msg) return;
      setChildren(panel, el("p", { class: "muted", text: err.status === 404 ? "Threads are not available on this server yet." : `Could not load the thread: ${err.message}` }));
      return;
    }
    if (this.msg !== msg) return;
    const items = flattenThread(data);
    this.threadSizes.set(msg.ThreadID, items.length);
    const list = items.map(({ msg: m, depth }) => {
      // The Date header is when the person wrote it; a conversation reads in that order.
      const when = m.Date || m.Created;
      return el("li", { class: `depth-${Math.min(depth, 6)}` }, el("button", {
        type: "button",
        class: `thread-item${m.ID === msg.ID ? " current" : ""}${m.Read ? "" : " unread"}`,
        "aria-current": m.ID === msg.ID ? "true" : null,
        onclick: () => this.app.openMessage(m.ID),
      },
      el("span", { class: "row-from", text: shortAddress(m.From) }),
      el("span", { class: "row-subject", text: m.Subject || "(no subject)" }),
      el("time", { class: "row-time", datetime: when, title: formatFullTime(when), text: formatListTime(when) })));
    });
    setChildren(panel, el("p", { class: "muted", text: `${items.length} message${items.length === 1 ? "" : "s"} in this conversation` }), el("ol", { class: "thread" }, list));
  }
}

/** A tag chip; with `onTag` it is a button that lists the messages with that tag. */
export function tagChip(tag, onTag) {
  if (!onTag) return el("span", { class: "tag", text: tag });
  return el("button", {
    type: "button",
    class: "tag tag-link",
    title: `Messages tagged ${tag}`,
    dataset: { tag },
    onclick: (ev) => {
      ev.stopPropagation();
      onTag(tag);
    },
    text: tag,
  });
}

/**
 * The messages of a thread response in order, with their nesting depth. Tolerant of the
 * shape: a flat list ({Messages: [...]}, each maybe with a Depth) or a tree whose nodes
 * hold a message summary and their children.
 */
export function flattenThread(data) {
  const out = [];
  const seen = new Set();
  const isMessage = (v) => v && typeof v === "object" && typeof v.ID === "string" && "Subject" in v;
  const walk = (node, depth) => {
    if (Array.isArray(node)) {
      for (const item of node) walk(item, depth);
      return;
    }
    if (!node || typeof node !== "object") return;
    if (isMessage(node)) {
      if (!seen.has(node.ID)) {
        seen.add(node.ID);
        out.push({ msg: node, depth: Number(node.Depth ?? node.depth ?? depth) || 0 });
      }
      for (const [key, value] of Object.entries(node)) {
        if (typeof value === "object" && key !== "From" && key !== "To" && key !== "Cc" && key !== "Bcc" && key !== "ReplyTo") walk(value, depth + 1);
      }
      return;
    }
    // A wrapper node ({Message: {...}, Children: [...]}): its message, then its children deeper.
    const inner = Object.values(node).find(isMessage);
    if (inner) walk(inner, depth);
    for (const value of Object.values(node)) {
      if (value !== inner && typeof value === "object") walk(value, inner ? depth + 1 : depth);
    }
  };
  walk(data, 0);
  return out;
}

function loading() {
  return el("p", { class: "muted loading", text: "Loading…" });
}

// ---- the built-in tabs ------------------------------------------------------------------

const attachmentCount = (msg) => (msg.Attachments || []).length + (msg.Inline || []).length;

registerTab({ key: "html", order: 10, label: "HTML", when: (msg) => Boolean(msg.HTML), render: (p, m, v) => v.renderHtml(p, m) });
registerTab({ key: "source", order: 15, label: "HTML source", when: (msg) => Boolean(msg.HTML), render: (p, m, v) => v.renderSource(p, m) });
registerTab({ key: "text", order: 20, label: "Text", render: (p, m, v) => v.renderText(p, m) });
registerTab({ key: "headers", order: 30, label: "Headers", render: (p, m, v) => v.renderHeaders(p, m) });
registerTab({ key: "raw", order: 40, label: "Raw", render: (p, m, v) => v.renderRaw(p, m) });
registerTab({
  key: "attachments",
  order: 50,
  label: (msg) => `Attachments (${attachmentCount(msg)})`,
  when: (msg) => attachmentCount(msg) > 0,
  render: (p, m, v) => v.renderAttachments(p, m),
});
registerTab({ key: "envelope", order: 60, label: "Envelope", render: (p, m, v) => v.renderEnvelope(p, m) });
registerTab({
  key: "thread",
  order: 70,
  label: (msg, v) => `Thread (${v.threadSizes.get(msg.ThreadID)})`,
  // only for a conversation of two or more (the size is learnt when the message opens)
  when: (msg, v) => v.threads && Boolean(msg.ThreadID) && (v.threadSizes.get(msg.ThreadID) || 0) > 1,
  render: (p, m, v) => v.renderThread(p, m),
});
