// The "Fetched accounts" panel of the sidebar (docs/fetch.md): accounts that the server
// fetches itself (postroom serve --fetch-config), each with what it is doing, its last
// sync, how many messages it copied and its last error, and a "Sync now" button.
// Hidden when the server fetches no accounts. Refreshed every 5 s while the page is shown.

import { url } from "./api.js";
import { el, formatNumber, setChildren } from "./util.js";

const REFRESH_MS = 5000;

async function load() {
  const res = await fetch(url("api/v2/fetch/accounts"), { headers: { Accept: "application/json" } });
  if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
  return res.json();
}

async function syncNow(name) {
  // a JSON body: the cross-site contract for state-changing requests (docs/security.md)
  const res = await fetch(url(`api/v2/fetch/accounts/${encodeURIComponent(name)}/sync`), {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: "{}",
  });
  if (!res.ok) throw new Error((await res.text()).trim() || `${res.status}`);
}

function when(iso) {
  if (!iso) return "never";
  const d = new Date(iso);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

function state(acc) {
  if (acc.Syncing) return "syncing…";
  if (!acc.LastSync) return "waiting for the first sync";
  const mode = acc.Idle ? "IDLE" : "polling";
  return `${mode} · last sync ${when(acc.LastSync)} · ${formatNumber(acc.LastFetched)} new`;
}

function row(acc, refresh) {
  const button = el("button", { type: "button", class: "btn btn-ghost fetch-sync", text: "Sync now" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await syncNow(acc.Name);
      button.textContent = "Queued";
    } catch (e) {
      button.textContent = "Failed";
      button.title = String(e.message || e);
    }
    setTimeout(() => {
      button.disabled = false;
      button.textContent = "Sync now";
      refresh();
    }, 1500);
  });
  const where = `${acc.User} @ ${acc.Host} (${acc.Protocol.toUpperCase()}) → ${acc.Mailbox}`;
  return el(
    "li",
    { class: "fetch-account", dataset: { account: acc.Name } },
    el("div", { class: "fetch-head" }, el("span", { class: "fetch-name", text: acc.Name, title: where }), button),
    el("div", { class: "fetch-state muted", text: state(acc) }),
    el("div", { class: "fetch-total muted", text: `${formatNumber(acc.FetchedTotal)} fetched since start` }),
    acc.LastError
      ? el("div", { class: "fetch-error", role: "status", text: acc.LastError, title: `at ${when(acc.LastErrorAt)}` })
      : null,
  );
}

/** Add the panel to the sidebar (above its foot), shown once the server reports fetch accounts. */
export function startFetchPanel(sidebar = document.getElementById("sidebar")) {
  if (!sidebar) return;
  const container = el("div", { class: "sidebar-fetch", id: "sidebar-fetch", hidden: true });
  const list = el("ul", { class: "fetch-list" });
  setChildren(container, el("h2", { class: "sidebar-title", text: "Fetched accounts" }), list);
  sidebar.insertBefore(container, sidebar.querySelector(".sidebar-foot"));
  let timer = 0;
  let styled = false;
  const refresh = async () => {
    clearTimeout(timer);
    try {
      const data = await load();
      container.hidden = !data.Enabled;
      if (!data.Enabled) return; // no --fetch-config: nothing to show, and no need to ask again
      if (!styled) {
        document.head.append(el("link", { rel: "stylesheet", href: "fetch.css" }));
        styled = true;
      }
      setChildren(list, data.Accounts.map((acc) => row(acc, refresh)));
    } catch {
      // an older server without this API, or a hiccup: try again later
    }
    timer = setTimeout(refresh, document.hidden ? REFRESH_MS * 6 : REFRESH_MS);
  };
  refresh();
}
