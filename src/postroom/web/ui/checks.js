// The checks' tabs in the message view (docs/checks.md): a score summary ("Checks"),
// HTML Check, Link Check, Spam (when the server has spamd) and Authentication. They
// register through view.js's tab registry; each asks the API when first shown. The
// link check makes this server send requests to the message's links, so it runs only
// when the person presses its button (as Mailpit does).

import { api, url } from "./api.js";
import { registerTab } from "./view.js";
import { el, setChildren } from "./util.js";

const enc = encodeURIComponent;
const reports = new Map(); // message ID -> Promise of GET /api/v2/message/{ID}/checks?links=false
const REPORT_CACHE = 20;
let spamEnabled = false;

async function getJSON(path, params) {
  const res = await fetch(url(path, params), { headers: { Accept: "application/json" } });
  const text = await res.text();
  if (!res.ok) throw new Error(text.trim() || `${res.status} ${res.statusText}`);
  return JSON.parse(text);
}

function report(id) {
  if (!reports.has(id)) {
    const p = getJSON(`api/v2/message/${enc(id)}/checks`, { links: "false" });
    p.catch(() => reports.delete(id)); // a failure is not remembered
    reports.set(id, p);
    while (reports.size > REPORT_CACHE) reports.delete(reports.keys().next().value);
  }
  return reports.get(id);
}

function loading(text = "Checking…") {
  return el("p", { class: "muted loading", text });
}

function pct(n) {
  return `${(Math.round(n * 10) / 10).toString()}%`;
}

/** A stacked bar: supported / partial / unsupported shares (percentages). */
function bar(s) {
  const seg = (cls, v, label) => {
    const node = el("span", { class: `ck-seg ${cls}`, title: `${label} ${pct(v)}` });
    node.style.width = `${v}%`; // CSSOM, not a style attribute: the UI's CSP has no 'unsafe-inline'
    return node;
  };
  return el("span", { class: "ck-bar", role: "img", "aria-label": `supported ${pct(s.Supported)}, partial ${pct(s.Partial)}, unsupported ${pct(s.Unsupported)}` },
    seg("ck-yes", s.Supported, "supported"), seg("ck-partial", s.Partial, "partial"), seg("ck-no", s.Unsupported, "unsupported"));
}

function badge(result) {
  const r = String(result || "none");
  const cls = r === "pass" ? "ck-good" : ["fail", "permerror", "softfail"].includes(r) ? "ck-bad" : "ck-neutral";
  return el("span", { class: `ck-badge ${cls}`, text: r });
}

function severity(sev) {
  return el("span", { class: `ck-badge ck-sev-${sev}`, text: sev });
}

async function renderSummary(panel, msg, view) {
  setChildren(panel, loading());
  const rep = await report(msg.ID);
  if (!view.isCurrent(msg)) return;
  const s = rep.Summary;
  const facts = [
    ["Errors", String(s.Errors)],
    ["Warnings", String(s.Warnings)],
    ["HTML support", s.HTMLSupported === null ? "—" : pct(s.HTMLSupported)],
    ["Spam score", s.SpamScore === null ? "— (no spamd)" : `${s.SpamScore}${s.IsSpam ? " (spam)" : ""}`],
    ["SPF / DKIM / DMARC", `${s.SPF} / ${s.DKIM} / ${s.DMARC}`],
  ];
  const findings = rep.Findings.length
    ? el("ul", { class: "ck-findings" }, rep.Findings.map((f) =>
      el("li", { class: `ck-finding ck-sev-${f.Severity}` }, severity(f.Severity), " ",
        el("strong", { text: f.Message }), el("div", { class: "muted", text: `Fix: ${f.Fix}` }))))
    : el("p", { class: "ck-clean", text: "No findings: nothing here would make this message land in spam." });
  setChildren(panel,
    el("table", { class: "kv ck-summary" }, el("caption", { class: "visually-hidden", text: "Check summary" }),
      el("tbody", {}, facts.map(([k, v]) => el("tr", {}, el("th", { scope: "row", text: k }), el("td", { text: v }))))),
    el("h3", { class: "ck-h", text: "Findings" }), findings);
}

async function renderHtmlCheck(panel, msg, view) {
  setChildren(panel, loading());
  const data = await getJSON(`api/v1/message/${enc(msg.ID)}/html-check`);
  if (!view.isCurrent(msg)) return;
  const t = data.Total;
  const head = el("div", { class: "ck-total" },
    el("strong", { text: `${pct(t.Supported)} supported` }), bar(t),
    el("span", { class: "muted", text: ` ${t.Tests} features tested on ${t.Nodes} HTML elements` }));
  if (!data.Warnings.length) {
    setChildren(panel, head, el("p", { class: "ck-clean", text: "Every feature this message uses is supported by every tested client." }));
    return;
  }
  const rows = data.Warnings.map((w) => {
    const bad = w.Results.filter((r) => r.Support !== "yes");
    const notes = Object.entries(w.NotesByNumber || {});
    return el("details", { class: "ck-warning" },
      el("summary", {}, el("span", { class: "ck-title", text: w.Title }), " ",
        el("span", { class: "muted", text: `${w.Category.toUpperCase()} · found ${w.Score.Found}× · ${pct(w.Score.Unsupported)} unsupported` }), bar(w.Score)),
      el("ul", { class: "ck-clients" }, bad.map((r) => el("li", { class: `ck-${r.Support}` },
        `${r.Name}: ${r.Support === "no" ? "not supported" : "partial"}${r.NoteNumber ? ` [${r.NoteNumber}]` : ""}`))),
      notes.length ? el("ol", { class: "ck-notes" }, notes.map(([n, text]) => el("li", { value: n, text }))) : "",
      el("a", { href: w.URL, target: "_blank", rel: "noopener noreferrer", text: "caniemail.com" }));
  });
  setChildren(panel, head, ...rows);
}

function renderLinkCheck(panel, msg, view) {
  const follow = el("input", { type: "checkbox", id: "ck-follow" });
  const out = el("div", { class: "ck-links" });
  const run = el("button", { type: "button", class: "btn btn-primary", id: "ck-run-links", text: "Check links" });
  run.addEventListener("click", async () => {
    run.disabled = true;
    setChildren(out, loading("Checking links…"));
    try {
      const data = await getJSON(`api/v1/message/${enc(msg.ID)}/link-check`, { follow: follow.checked ? "true" : "false" });
      if (!view.isCurrent(msg)) return;
      if (!data.Links.length) {
        setChildren(out, el("p", { class: "muted", text: "The message has no http(s) links." }));
        return;
      }
      setChildren(out, el("p", { text: `${data.Links.length} link(s), ${data.Errors} error(s)` }),
        el("table", { class: "kv ck-link-table" }, el("tbody", {}, data.Links.map((l) =>
          el("tr", { class: l.StatusCode === 0 || l.StatusCode >= 400 ? "ck-link-bad" : "" },
            el("th", { scope: "row", text: l.StatusCode ? String(l.StatusCode) : "—" }),
            el("td", {}, el("div", { text: l.URL }), el("div", { class: "muted", text: l.Status })))))));
    } catch (err) {
      setChildren(out, el("p", { class: "error", text: `Could not check links: ${err.message}` }));
    } finally {
      run.disabled = false;
    }
  });
  setChildren(panel,
    el("p", { class: "muted", text: "Checking links makes this server request each URL of the message (private addresses are refused unless postroom runs with --link-check-private)." }),
    el("div", { class: "ck-actions" }, run, " ", el("label", { for: "ck-follow" }, follow, " follow redirects")), out);
}

async function renderSpam(panel, msg, view) {
  setChildren(panel, loading());
  const data = await getJSON(`api/v1/message/${enc(msg.ID)}/sa-check`);
  if (!view.isCurrent(msg)) return;
  if (data.Error) {
    setChildren(panel, el("p", { class: "error", text: `SpamAssassin: ${data.Error}` }));
    return;
  }
  setChildren(panel,
    el("p", { class: `ck-spam ${data.IsSpam ? "ck-bad" : "ck-good"}` },
      el("strong", { text: `Score ${data.Score}` }), data.IsSpam ? " — SpamAssassin calls this spam" : " — not spam"),
    el("table", { class: "kv ck-rules" }, el("caption", { class: "visually-hidden", text: "SpamAssassin rules" }),
      el("tbody", {}, data.Rules.map((r) => el("tr", {},
        el("th", { scope: "row", text: String(r.Score) }), el("td", {}, el("strong", { text: r.Name }), " ", r.Description))))));
}

async function renderAuth(panel, msg, view) {
  setChildren(panel, loading());
  const rep = await report(msg.ID);
  if (!view.isCurrent(msg)) return;
  const sec = rep.Sections.Authentication;
  const a = sec.Result;
  if (!a) {
    setChildren(panel, el("p", { class: "error", text: `Not checked: ${sec.Error}` }));
    return;
  }
  const rows = [
    ["SPF", a.SPF.Result, `${a.SPF.MailFrom || "<>"} from ${a.SPF.IP || "unknown IP"}: ${a.SPF.Reason}`],
    ...(a.DKIM.length ? a.DKIM.map((d) => ["DKIM", d.Result, `d=${d.Domain} s=${d.Selector}${d.Reason ? `: ${d.Reason}` : ""}`])
      : [["DKIM", "none", "the message is not signed"]]),
    ["ARC", a.ARC.Result, a.ARC.Reason],
    ["DMARC", a.DMARC.Result, `${a.DMARC.Domain}${a.DMARC.Policy ? ` (p=${a.DMARC.Policy})` : ""}: ${a.DMARC.Reason}`],
  ];
  setChildren(panel,
    sec.State === "not checked" ? el("p", { class: "muted", text: sec.Error }) : "",
    el("table", { class: "kv ck-auth" }, el("caption", { class: "visually-hidden", text: "Authentication results" }),
      el("tbody", {}, rows.map(([k, r, why]) => el("tr", {}, el("th", { scope: "row", text: k }), el("td", {}, badge(r), " ", why))))),
    el("h3", { class: "ck-h", text: "Authentication-Results" }), el("pre", { class: "ck-ar", text: a.AuthenticationResults }));
}

function addStyles() {
  if (document.querySelector("link[data-checks]")) return;
  document.head.append(el("link", { rel: "stylesheet", href: "checks.css", dataset: { checks: "1" } }));
}

registerTab({ key: "checks", order: 62, label: "Checks", render: renderSummary });
registerTab({ key: "htmlcheck", order: 64, label: "HTML Check", when: (msg) => Boolean(msg.HTML), render: renderHtmlCheck });
registerTab({ key: "linkcheck", order: 66, label: "Link Check", render: renderLinkCheck });
registerTab({ key: "spam", order: 67, label: "Spam", when: () => spamEnabled, render: renderSpam });
registerTab({ key: "auth", order: 68, label: "Authentication", render: renderAuth });

/** Add the tabs' styles and learn whether the server has spamd (/api/v2/webui's SpamAssassin,
 * as Mailpit's); the Spam tab shows then. The UI calls it once its first list is on screen. */
export async function probeSpam(view) {
  addStyles();
  try {
    spamEnabled = Boolean((await api.webui()).SpamAssassin);
  } catch {
    spamEnabled = false;
  }
  if (view) view.refresh();
}
