// The "Release" tab of the message view (docs/relay.md), shown when the server has a relay
// (/api/v1/webui's MessageRelay.Enabled): send the message on to real recipients through
// the outbound queue, and watch each copy's delivery (attempts, replies, next try). Release
// answers at once; the log refreshes itself while a copy is still queued or being sent.

import { api, url } from "./api.js";
import { registerTab } from "./view.js";
import { el, setChildren } from "./util.js";

const enc = encodeURIComponent;
const REFRESH_MS = 1500;
let relay = null; // MessageRelay of /api/v1/webui, once known

async function call(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (method !== "GET") {
    init.body = JSON.stringify(body ?? {});
    init.headers["Content-Type"] = "application/json"; // cross-site protection (docs/security.md)
  }
  const res = await fetch(url(path), init);
  const text = await res.text();
  if (!res.ok) throw new Error(text.trim() || `${res.status} ${res.statusText}`);
  return text.trim().startsWith("[") || text.trim().startsWith("{") ? JSON.parse(text) : text;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function logTable(rows) {
  if (!rows.length) return el("p", { class: "muted", text: "Not released yet." });
  const head = el("tr", {}, ...["To", "State", "Attempts", "Last reply", "Next attempt"].map((t) => el("th", { text: t })));
  const body = rows.map((r) =>
    el("tr", { class: `delivery state-${r.State}`, dataset: { to: r.To } },
      el("td", { text: r.To }),
      el("td", {}, el("span", { class: `ck-badge ${r.State === "sent" ? "ck-good" : r.State === "queued" || r.State === "sending" ? "ck-neutral" : "ck-bad"}`, text: r.State })),
      el("td", { text: String(r.Attempts) }),
      el("td", { class: "reply", text: r.LastReply || "" }),
      el("td", { text: r.State === "queued" ? when(r.NextAttempt) : "" })));
  return el("table", { class: "kv deliveries" }, el("caption", { class: "visually-hidden", text: "Delivery log" }), el("thead", {}, head), el("tbody", {}, ...body));
}

async function render(panel, msg, view) {
  const env = await call("GET", `api/v2/message/${enc(msg.ID)}/envelope`).catch(() => null);
  const input = el("input", {
    type: "text", class: "release-to", "aria-label": "Recipients", placeholder: "a@example.com, b@example.com",
    value: env && env.RcptTo ? env.RcptTo.join(", ") : (msg.To || []).map((a) => a.Address).join(", "),
  });
  const status = el("p", { class: "release-status muted", role: "status" });
  const log = el("div", { class: "delivery-log" });
  let timer = null;
  const refresh = async () => {
    clearTimeout(timer);
    if (!view.isCurrent(msg) || !panel.isConnected) return;
    const rows = await call("GET", `api/v2/message/${enc(msg.ID)}/deliveries`);
    setChildren(log, logTable(rows));
    if (rows.some((r) => r.State === "queued" || r.State === "sending")) timer = setTimeout(refresh, REFRESH_MS);
  };
  const release = async (ev) => {
    ev.preventDefault();
    const to = input.value.split(/[,;\s]+/).filter(Boolean);
    if (!to.length) {
      status.textContent = "Give at least one recipient.";
      return;
    }
    status.textContent = "Releasing…";
    try {
      await call("POST", `api/v1/message/${enc(msg.ID)}/release`, { To: to });
      status.textContent = `Queued for ${to.length} recipient${to.length === 1 ? "" : "s"} via ${relay.SMTPServer}.`;
    } catch (e) {
      status.textContent = `Not released: ${e.message}`;
    }
    refresh().catch(() => {});
  };
  const form = el("form", { class: "release-form", onsubmit: release },
    el("label", { text: "Release to " }, input),
    el("button", { type: "submit", class: "primary", text: "Release" }));
  setChildren(panel,
    el("p", { class: "muted", text: `Relay: ${relay.SMTPServer}${relay.ReturnPath ? `, return path ${relay.ReturnPath}` : ""}` }),
    form, status, el("h3", { text: "Deliveries" }), log);
  await refresh();
}

registerTab({ key: "release", order: 69, label: "Release", when: () => Boolean(relay && relay.Enabled), render });

/** Learn whether the server relays (Mailpit's /api/v1/webui); the Release tab shows then. */
export async function probeRelay(view) {
  try {
    relay = (await api.webui()).MessageRelay || null;
  } catch {
    relay = null;
  }
  if (view) view.refresh();
}
