// postroom web UI: the entry module. Wires the controls and keyboard shortcuts to the other
// modules and starts the page (main): the first list, then the sidebar, the optional
// features and the live events. state.js says how the modules depend on each other.

import { api } from "./api.js";
import { deleteAll, deleteSelected, editTags, markAllRead, toggleRead } from "./commands.js";
import { LiveEvents } from "./events.js";
import { onEvent, setupNotifyButton, updateBanner } from "./live.js";
import { closeMessage, loadCounts, loadList, loadMailboxes, loadTags, navigate, openMessage, openThread, readHash, renderList, searchTag, syncGroupButton, toggleGrouped } from "./nav.js";
import { checkRow, renderBulkActions, syncChecked } from "./selection.js";
import { applyTheme, closeDrawer, cycleTheme, fitSearchHint, onConnState, openDrawer, storedTheme, updateTitle, wireSidebarResize } from "./shell.js";
import { $, isGrouped, list, PAGE_SIZE_KEY, PAGE_SIZES, sidebar, state, view } from "./state.js";
import { debounce, warmFormats } from "./util.js";
import { probeSpam } from "./checks.js"; // the checks' tabs (HTML Check, Link Check, Spam, Authentication)
import { probeRelay } from "./delivery.js"; // the Release tab (docs/relay.md)
import { startFetchPanel } from "./fetch.js"; // the sidebar's fetched accounts (docs/fetch.md)

const SEARCH_DELAY_MS = 250;

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

/** The next (1) or previous (-1) message or conversation; crosses pages. */
function goMessage(delta) {
  const threadId = isGrouped() ? list.neighbourThread(delta) : null;
  const id = isGrouped() ? null : list.neighbour(delta);
  if (threadId) openThread(threadId);
  else if (id) openMessage(id);
  else if (delta > 0 && !$("next-page").disabled) navigate({ start: state.start + state.limit, id: null });
  else if (delta < 0 && !$("prev-page").disabled) navigate({ start: Math.max(0, state.start - state.limit), id: null });
}

function onKey(ev) {
  if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (document.querySelector("dialog[open]")) return;
  if (typing(ev.target)) {
    if (ev.key === "Escape" && ev.target.id === "search") {
      ev.target.value = "";
      navigate({ query: "", start: 0 });
      ev.target.blur();
    }
    return;
  }
  const go = goMessage;
  const actions = {
    j: () => go(1),
    ArrowDown: () => go(1),
    k: () => go(-1),
    ArrowUp: () => go(-1),
    "/": () => $("search").focus(),
    r: toggleRead,
    Delete: deleteSelected,
    "#": deleteSelected,
    t: editTags,
    x: () => {
      if (isGrouped() || !state.selectedId) return;
      checkRow(state.selectedId, !state.checked.has(state.selectedId), false);
    },
    n: () => !$("next-page").disabled && navigate({ start: state.start + state.limit, id: null }),
    p: () => !$("prev-page").disabled && navigate({ start: Math.max(0, state.start - state.limit), id: null }),
    "?": () => $("help-dialog").showModal(),
    g: toggleGrouped,
    Escape: () => (document.body.classList.contains("drawer-open") ? closeDrawer() : closeMessage()),
  };
  if (/^[1-9]$/.test(ev.key) && state.message) {
    ev.preventDefault();
    view.selectIndex(Number(ev.key) - 1);
    return;
  }
  const action = actions[ev.key];
  if (!action) return;
  // Arrow keys keep their native meaning (scrolling) unless the list has focus.
  if ((ev.key === "ArrowDown" || ev.key === "ArrowUp") && ev.target.id !== "list") return;
  if ((ev.key === "Delete" || ev.key === "#" || ev.key === "r" || ev.key === "t") && !state.selectedId) return;
  ev.preventDefault();
  action();
}

function wire() {
  wireSidebarResize();
  const search = $("search");
  const runSearch = debounce(() => navigate({ query: search.value.trim(), start: 0 }), SEARCH_DELAY_MS);
  search.addEventListener("input", runSearch);
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    runSearch.cancel();
    navigate({ query: search.value.trim(), start: 0 });
  });
  $("prev-page").addEventListener("click", () => navigate({ start: Math.max(0, state.start - state.limit), id: null }));
  $("next-page").addEventListener("click", () => navigate({ start: state.start + state.limit, id: null }));
  $("list-error-retry").addEventListener("click", () => loadList());
  $("select-all").addEventListener("change", (ev) => {
    if (ev.target.checked) for (const m of state.messages) state.checked.add(m.ID);
    else state.checked.clear();
    syncChecked();
  });
  $("theme-btn").addEventListener("click", cycleTheme);
  $("prev-msg").addEventListener("click", () => goMessage(-1));
  $("next-msg").addEventListener("click", () => goMessage(1));
  $("page-size").value = String(state.limit);
  $("page-size").addEventListener("change", (ev) => {
    const n = Number(ev.target.value);
    if (!PAGE_SIZES.includes(n)) return;
    state.limit = n;
    try {
      localStorage.setItem(PAGE_SIZE_KEY, String(n));
    } catch {
      // private mode
    }
    // stay on the page that holds the first message on screen
    const start = Math.floor(state.start / n) * n;
    state.start = -1; // force a reload even when start stays the same
    navigate({ start });
  });
  $("tag-nav").addEventListener("click", (ev) => {
    const a = ev.target.closest("a[data-tag]");
    if (!a) return;
    ev.preventDefault();
    searchTag(a.dataset.tag);
  });
  $("banner-btn").addEventListener("click", () => {
    state.pending = 0;
    updateBanner();
    navigate({ start: 0 });
    if (state.start === 0) loadList();
  });
  $("read-btn").addEventListener("click", toggleRead);
  $("delete-btn").addEventListener("click", deleteSelected);
  $("tag-btn").addEventListener("click", editTags);
  $("delete-all-btn").addEventListener("click", deleteAll);
  $("mark-all-read-btn").addEventListener("click", markAllRead);
  $("group-btn").addEventListener("click", toggleGrouped);
  $("help-btn").addEventListener("click", () => $("help-dialog").showModal());
  // Cancel is a plain button, so Enter in the field submits with "Save tags" (the form's
  // default button is its first submit button).
  $("tag-cancel").addEventListener("click", () => $("tag-dialog").close("cancel"));
  $("back-btn").addEventListener("click", closeMessage);
  $("menu-btn").addEventListener("click", () => (document.body.classList.contains("drawer-open") ? closeDrawer() : openDrawer()));
  $("scrim").addEventListener("click", closeDrawer);
  document.querySelector(".brand").addEventListener("click", (ev) => {
    ev.preventDefault();
    $("search").value = "";
    navigate({ mailbox: "", query: "", start: 0, id: null });
  });
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", () => navigate(readHash()));
}

/** Name the SMTP address in the empty screens (from /api/v2/webui's Listeners, if any). */
async function loadListeners() {
  try {
    const info = await api.webui();
    state.label = info?.Label || "";
    updateTitle();
    $("delete-all-btn").hidden = Boolean(info?.HideDeleteAllButton); // --hide-delete-all-button
    const smtp = info?.Listeners?.smtp;
    if (!smtp) return;
    // a wildcard bind is reached through the host name this page came from
    const addr = smtp.replace(/^(0\.0\.0\.0|\[::\])(?=:)/, location.hostname);
    state.smtpAddress = addr;
    $("view-empty-hint").textContent = `Send mail to SMTP ${addr} and it appears here instantly.`;
    if (!state.messages.length && !state.query) renderList();
  } catch {
    // the generic hint stays
  }
}

async function main() {
  applyTheme(storedTheme());
  fitSearchHint();
  matchMedia("(max-width: 760px)").addEventListener("change", fitSearchHint);
  renderBulkActions();
  wire();
  setupNotifyButton();
  const initial = readHash();
  $("search").value = initial.query;
  state.mailbox = initial.mailbox;
  state.query = initial.query;
  state.start = initial.start;
  state.grouped = initial.grouped;
  sidebar.setCurrent(state.mailbox);
  $("delete-all-label").textContent = state.mailbox ? "Delete mailbox" : "Delete all";
  // A link to the grouped list needs to know first whether the server has conversations.
  if (state.grouped) view.threads = await api.hasThreads();
  syncGroupButton();
  // The list first, on its own, so the first page is on screen as soon as possible; the
  // sidebar's counts follow (they are aggregate queries that would compete with it), and so
  // do the optional parts (the checks' and Release tabs, fetched accounts), which share one
  // request for the server's settings with loadListeners.
  const listed = loadList();
  warmFormats(); // while the first page is on its way (their first use costs tens of ms)
  await listed;
  await Promise.all([
    loadMailboxes(),
    state.mailbox ? loadCounts() : null,
    loadTags(),
    loadListeners(),
    probeSpam(view),
    probeRelay(view),
  ]);
  startFetchPanel();
  if (initial.id) await openMessage(initial.id);
  new LiveEvents(api.eventsUrl(), onEvent, onConnState).start();
  document.body.dataset.ready = "1";
  // Optional server features: the UI works without them and adds their views when present.
  view.threads = await api.hasThreads();
  syncGroupButton();
  if (view.threads && state.message) view.show(state.message);
}

main();
