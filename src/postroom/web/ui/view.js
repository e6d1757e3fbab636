// The message view: header block plus tabs (HTML, Text, Headers, Raw, Attachments,
// Envelope, Thread). Each tab loads on first show; the HTML preview is a sandboxed iframe.

import { api } from "./api.js";
import { SANDBOX, countRemote, viewUrl } from "./preview.js";
import {
  el, formatAddress, formatAddressList, formatFullTime, formatListTime, formatSize, icon, setChildren, shortAddress,
} from "./util.js";

const RAW_DISPLAY_LIMIT = 2 * 1024 * 1024; // show at most 2 MB of source; download for the rest
const WIDTHS = [
  { key: "phone", label: "Phone", px: 375, icon: "phone" },
  { key: "tablet", label: "Tablet", px: 768, icon: "tablet" },
  { key: "desktop", label: "Desktop", px: 0, icon: "desktop" },
];

export class MessageView {
  /**
   * @param {{root, subject, tags, meta, tabs, panels}} nodes
   * @param {{openMessage: (id) => void, toast: (text) => void}} app
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
    nodes.tabs.addEventListener("keydown", (ev) => this.onTabKey(ev));
  }

  /** Show a full Message (GET /api/v1/message/{ID}). */
  show(msg) {
    const same = this.msg && this.msg.ID === msg.ID;
    this.msg = msg;
    this.n.subject.textContent = msg.Subject || "(no subject)";
    this.renderTags(msg.Tags || []);
    this.renderMeta(msg);
    const atts = (msg.Attachments || []).length + (msg.Inline || []).length;
    this.tabs = [
      msg.HTML ? { key: "html", label: "HTML" } : null,
      { key: "text", label: "Text" },
      { key: "headers", label: "Headers" },
      { key: "raw", label: "Raw" },
      { key: "attachments", label: atts ? `Attachments (${atts})` : "Attachments" },
      { key: "envelope", label: "Envelope" },
      this.threads && msg.ThreadID ? { key: "thread", label: "Thread" } : null,
    ].filter(Boolean);
    if (!same || !this.tabs.some((t) => t.key === this.current)) {
      this.current = this.tabs.some((t) => t.key === this.current) && same ? this.current : this.tabs[0].key;
      if (!same && this.current !== "html" && msg.HTML) this.current = "html";
    }
    this.renderTabs();
    this.n.root.hidden = false;
  }

  clear() {
    this.msg = null;
    this.n.root.hidden = true;
    setChildren(this.n.panels);
  }

  renderTags(tags) {
    setChildren(this.n.tags, tags.map((t) => el("span", { class: "tag", text: t })));
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

  renderTabs() {
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
    this.renderPanel();
  }

  select(key, focus = false) {
    if (!this.tabs.some((t) => t.key === key)) return;
    this.current = key;
    for (const b of this.n.tabs.querySelectorAll("[role=tab]")) {
      const on = b.dataset.tab === key;
      b.setAttribute("aria-selected", on ? "true" : "false");
      b.tabIndex = on ? 0 : -1;
      if (on && focus) b.focus();
    }
    this.renderPanel();
  }

  /** Select the n-th tab (keyboard 1..7). */
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
    const panel = el("div", {
      class: `panel panel-${this.current}`,
      id: "panel",
      role: "tabpanel",
      "aria-labelledby": `tab-${this.current}`,
      tabindex: "0",
    });
    setChildren(this.n.panels, panel);
    const render = {
      html: () => this.renderHtml(panel, msg),
      text: () => this.renderText(panel, msg),
      headers: () => this.renderHeaders(panel, msg),
      raw: () => this.renderRaw(panel, msg),
      attachments: () => this.renderAttachments(panel, msg),
      envelope: () => this.renderEnvelope(panel, msg),
      thread: () => this.renderThread(panel, msg),
    }[this.current];
    Promise.resolve(render()).catch((err) => {
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
    setChildren(
      panel,
      el("div", { class: "panel-bar" }, el("div", { class: "segmented", role: "group", "aria-label": "Preview width" }, widthButtons), notice),
      stage,
    );
  }

  renderText(panel, msg) {
    const text = msg.Text || "";
    setChildren(panel, text ? el("pre", { class: "text-body", text }) : el("p", { class: "muted", text: "This message has no plain-text part." }));
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
    if (!parts.length) {
      setChildren(panel, el("p", { class: "muted", text: "No attachments." }));
      return;
    }
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
    const list = items.map(({ msg: m, depth }) =>
      el("li", { class: `depth-${Math.min(depth, 6)}` }, el("button", {
        type: "button",
        class: `thread-item${m.ID === msg.ID ? " current" : ""}${m.Read ? "" : " unread"}`,
        "aria-current": m.ID === msg.ID ? "true" : null,
        onclick: () => this.app.openMessage(m.ID),
      },
      el("span", { class: "row-from", text: shortAddress(m.From) }),
      el("span", { class: "row-subject", text: m.Subject || "(no subject)" }),
      el("time", { class: "row-time", datetime: m.Created, text: formatListTime(m.Created) }))));
    setChildren(panel, el("p", { class: "muted", text: `${items.length} message${items.length === 1 ? "" : "s"} in this conversation` }), el("ol", { class: "thread" }, list));
  }
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
