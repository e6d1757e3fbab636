// postroom web UI: the entry module. Holds the state (mailbox, search, page, selection),
// keeps it in the URL hash, wires the sidebar, list and view together, applies live
// events from the WebSocket, and handles keyboard shortcuts.

import { bulkActions, registerBulkAction } from "./actions.js";
import { api } from "./api.js";
import { LiveEvents } from "./events.js";
import { MessageList, pageLabel } from "./list.js";
import { Sidebar } from "./sidebar.js";
import { debounce, el, formatNumber, icon, setChildren, shortAddress, warmFormats } from "./util.js";
import { MessageView } from "./view.js";
import { probeSpam } from "./checks.js"; // the checks' tabs (HTML Check, Link Check, Spam, Authentication)
import { probeRelay } from "./delivery.js"; // the Release tab (docs/relay.md)
import { startFetchPanel } from "./fetch.js"; // the sidebar's fetched accounts (docs/fetch.md)

const PAGE_SIZES = [25, 50, 100, 200];
const PAGE_SIZE_KEY = "postroom.pageSize";
const THEME_KEY = "postroom.theme";
const SEARCH_DELAY_MS = 250;
const $ = (id) => document.getElementById(id);

const state = {
  label: "", // the server's --label, in the page title
  mailbox: "",
  query: "",
  start: 0,
  total: 0,
  messages: [],
  selectedId: null,
  message: null,
  pending: 0, // live arrivals not shown because the list is not on its first page
  grouped: false, // the list shows conversations (GET /api/v2/threads) instead of messages
  threads: [],
  threadId: null, // the conversation chosen in the grouped mode
  limit: storedPageSize(), // messages per page
  checked: new Set(), // IDs selected for a bulk action (on the page on screen)
  lastChecked: null, // anchor of a shift-click range
};

function storedPageSize() {
  try {
    const n = Number(localStorage.getItem(PAGE_SIZE_KEY));
    return PAGE_SIZES.includes(n) ? n : 50;
  } catch {
    return 50;
  }
}

let listAbort = null;
let messageAbort = null;
const sidebar = new Sidebar($("mailboxes"), (name) => navigate({ mailbox: name, query: "", start: 0, id: null }), {
  filter: $("mailbox-filter"),
  more: $("mailbox-more"),
});
const list = new MessageList($("list"), (id) => openMessage(id), (threadId) => openThread(threadId), {
  onCheck: (id, on, range) => checkRow(id, on, range),
  onTag: (tag) => searchTag(tag),
});
const view = new MessageView(
  { root: $("message"), subject: $("msg-subject"), tags: $("msg-tags"), meta: $("msg-meta"), tabs: $("tabs"), panels: $("panels") },
  { openMessage: (id) => openMessage(id), toast, searchTag: (tag) => searchTag(tag) },
);

// ---- URL hash <-> state -------------------------------------------------------------

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  return {
    mailbox: p.get("mailbox") || "",
    query: p.get("q") || "",
    start: Math.max(0, Number(p.get("start")) || 0),
    id: p.get("id"),
    grouped: p.get("group") === "1",
  };
}

function writeHash() {
  const p = new URLSearchParams();
  if (state.mailbox) p.set("mailbox", state.mailbox);
  if (state.query) p.set("q", state.query);
  if (state.start) p.set("start", String(state.start));
  if (state.grouped) p.set("group", "1");
  if (state.selectedId) p.set("id", state.selectedId);
  const hash = p.toString();
  if (location.hash.slice(1) !== hash) history.replaceState(null, "", hash ? `#${hash}` : location.pathname + location.search);
}

/** Change mailbox / search / page / selection and reload what changed. */
async function navigate({ mailbox = state.mailbox, query = state.query, start = state.start, id = state.selectedId, grouped = state.grouped } = {}) {
  const listChanged = mailbox !== state.mailbox || query !== state.query || start !== state.start || grouped !== state.grouped;
  if (mailbox !== state.mailbox) closeDrawer();
  state.mailbox = mailbox;
  state.query = query;
  state.start = start;
  state.grouped = grouped;
  syncGroupButton();
  if ($("search").value !== query && document.activeElement !== $("search")) $("search").value = query;
  sidebar.setCurrent(mailbox);
  $("delete-all-label").textContent = mailbox ? "Delete mailbox" : "Delete all";
  renderTagNav();
  if (listChanged) {
    state.pending = 0;
    clearChecked();
    await loadList();
  }
  if (id !== state.selectedId) {
    if (id) await openMessage(id);
    else closeMessage();
  }
  writeHash();
}

// ---- loading -------------------------------------------------------------------------

/** Whether the list shows conversations: asked for, offered by the server, and no search. */
function isGrouped() {
  return state.grouped && view.threads && !state.query;
}

async function loadList({ keepScroll = false } = {}) {
  if (isGrouped()) return loadThreads({ keepScroll });
  listAbort?.abort();
  const abort = new AbortController();
  listAbort = abort;
  const scroll = $("list").scrollTop;
  setBusy(abort);
  try {
    const data = await api.messages({ query: state.query, mailbox: state.mailbox, start: state.start, limit: state.limit, signal: abort.signal });
    if (abort.signal.aborted) return;
    state.messages = data.messages || [];
    // Mailpit's shape: total/unread count the store (or the mailbox); messages_count and
    // messages_unread count what matches the search, which is what the pages walk through.
    state.total = data.messages_count ?? data.total ?? state.messages.length;
    if (!state.mailbox && typeof data.total === "number") {
      sidebar.setTotals(data.total, data.unread ?? 0);
      updateTitle();
    }
    if (state.start && state.start >= state.total && state.total) {
      state.start = Math.max(0, Math.floor((state.total - 1) / state.limit) * state.limit);
      return loadList();
    }
    renderList();
    if (keepScroll) $("list").scrollTop = scroll;
    if (data.tags) fillTagList(data.tags);
    setError(null);
  } catch (err) {
    if (err.name === "AbortError") return;
    setError(state.query && err.status === 400 ? `This search could not run: ${err.message}` : `Could not load messages: ${err.message}`);
  } finally {
    if (listAbort === abort) setBusy(null);
  }
}

/** The grouped list mode: one row per conversation, newest activity first. */
async function loadThreads({ keepScroll = false } = {}) {
  listAbort?.abort();
  const abort = new AbortController();
  listAbort = abort;
  const scroll = $("list").scrollTop;
  setBusy(abort);
  try {
    const data = await api.threads({ mailbox: state.mailbox, start: state.start, limit: state.limit, signal: abort.signal });
    if (abort.signal.aborted) return;
    state.threads = data.threads || [];
    state.messages = [];
    state.total = data.total ?? state.threads.length;
    if (state.start && state.start >= state.total && state.total) {
      state.start = Math.max(0, Math.floor((state.total - 1) / state.limit) * state.limit);
      return loadThreads();
    }
    renderList();
    if (keepScroll) $("list").scrollTop = scroll;
    setError(null);
  } catch (err) {
    if (err.name === "AbortError") return;
    setError(`Could not load conversations: ${err.message}`);
  } finally {
    if (listAbort === abort) setBusy(null);
  }
}

function renderList() {
  const grouped = isGrouped();
  const shown = grouped ? state.threads.length : state.messages.length;
  const noun = grouped ? "conversations" : "messages";
  if (grouped) list.renderThreads(state.threads, state.threadId);
  else list.render(state.messages, state.selectedId);
  const title = state.query ? "Search results" : state.mailbox || (grouped ? "All conversations" : "All messages");
  $("list-title").textContent = title;
  $("list-title").title = title; // the whole of a long mailbox name
  $("list-count").textContent = state.total ? pageLabel(state.start, shown, state.total, noun) : "";
  $("page-info").textContent = pageLabel(state.start, shown, state.total, noun);
  $("prev-page").disabled = state.start <= 0;
  $("next-page").disabled = state.start + shown >= state.total;
  $("pager").hidden = !state.total;
  const empty = !shown;
  $("empty").hidden = !empty;
  $("list").hidden = empty;
  if (empty) {
    $("empty-title").textContent = state.query ? "Nothing matches this search" : "No messages yet";
    $("empty-hint").textContent = state.query
      ? "Try fewer words, or operators like from:, to:, subject:, is:unread, has:attachment."
      : state.smtpAddress
        ? `Point your application's SMTP settings at ${state.smtpAddress} and send something.`
        : `Point your application's SMTP settings at ${location.hostname} and send something.`;
  }
  updateBanner();
  updateTitle();
  pruneChecked();
}

async function loadMailboxes() {
  try {
    const data = await api.mailboxes();
    sidebar.setMailboxes(data.mailboxes || []);
  } catch {
    sidebar.setMailboxes([]); // the extension may be missing (plain Mailpit API): All still works
  }
}

/** The tags in use, in the sidebar (each lists its messages) and in the tag dialog's suggestions. */
async function loadTags() {
  let tags = [];
  try {
    tags = (await api.tags()) || [];
  } catch {
    return;
  }
  fillTagList(tags);
  state.tags = tags;
  renderTagNav();
}

function renderTagNav() {
  const tags = state.tags || [];
  const nav = $("tag-nav");
  const current = currentTag();
  setChildren(nav, tags.map((t) => el("li", {}, el("a", {
    href: `#${new URLSearchParams({ q: tagQuery(t) }).toString()}`,
    class: `tag-nav-item${t === current ? " current" : ""}`,
    "aria-current": t === current ? "page" : null,
    dataset: { tag: t },
  }, icon("tag"), el("span", { class: "mailbox-name", text: t })))));
  $("sidebar-tags").hidden = !tags.length;
}

/** `tag:NAME` (quoted when the name has a space or a quote), as the search language reads it. */
function tagQuery(tag) {
  return /^[^\s"()]+$/.test(tag) ? `tag:${tag}` : `tag:"${tag.replace(/["\\]/g, "\\$&")}"`;
}

function currentTag() {
  const m = state.query.match(/^tag:(?:"((?:[^"\\]|\\.)*)"|(\S+))$/);
  return m ? (m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2]) : null;
}

/** List the messages with a tag (a chip or the sidebar's tag list was chosen). */
function searchTag(tag) {
  const q = tagQuery(tag);
  $("search").value = q;
  closeDrawer();
  navigate({ query: q, start: 0 });
}

async function loadCounts() {
  // Totals for "All" and the title come from an unfiltered one-row listing.
  try {
    const data = await api.messages({ start: 0, limit: 1 });
    sidebar.setTotals(data.total ?? 0, data.unread ?? 0);
    updateTitle();
  } catch {
    // shown on the next list load
  }
}

const refreshCounts = debounce(() => {
  loadMailboxes();
  loadCounts();
}, 200);
const refreshTags = debounce(() => loadTags(), 300);
const refreshList = debounce(() => loadList({ keepScroll: true }), 300);
// A new message joins its conversation when the indexer reaches it, a moment after it
// arrives (and the WebSocket does not announce that): the grouped list reloads a bit later.
const refreshThreads = debounce(() => loadList({ keepScroll: true }), 1000);

/** Open a conversation of the grouped list: its newest message, on the Thread tab. */
async function openThread(threadId) {
  state.threadId = threadId;
  list.selectThread(threadId);
  let data;
  try {
    data = await api.thread(threadId);
  } catch (err) {
    toast(err.status === 404 ? "That conversation no longer exists." : `Could not open the conversation: ${err.message}`);
    if (err.status === 404) refreshList();
    return;
  }
  if (state.threadId !== threadId) return;
  const messages = data.Messages || [];
  if (!messages.length) return;
  const newest = messages.reduce((a, b) => (b.Created > a.Created ? b : a));
  view.threadSizes.set(threadId, messages.length);
  await openMessage(newest.ID);
  if (state.selectedId === newest.ID) view.select("thread");
}

function syncGroupButton() {
  const btn = $("group-btn");
  btn.hidden = !view.threads;
  btn.setAttribute("aria-pressed", state.grouped ? "true" : "false");
  btn.disabled = Boolean(state.query);
  btn.title = state.query ? "Search results are messages; clear the search to group by conversation" : "Group by conversation (g)";
}

function toggleGrouped() {
  if (!view.threads) return;
  state.threadId = null;
  navigate({ grouped: !state.grouped, start: 0 });
}

async function openMessage(id) {
  if (!id) return;
  messageAbort?.abort();
  const abort = new AbortController();
  messageAbort = abort;
  state.selectedId = id;
  list.select(id);
  writeHash();
  document.body.classList.add("reading");
  try {
    const msg = await api.message(id, abort.signal);
    if (abort.signal.aborted) return;
    state.message = msg;
    $("view-empty").hidden = true;
    view.show(msg);
    syncReadButton();
    $("eml-btn").href = api.rawUrl(id);
    $("eml-btn").setAttribute("download", `${(msg.Subject || id).replace(/[^\w.-]+/g, "_").slice(0, 60)}.eml`);
    const summary = state.messages.find((m) => m.ID === id);
    if (summary && !summary.Read) setRead([id], true, { quiet: true });
  } catch (err) {
    if (err.name === "AbortError") return;
    if (err.status === 404) {
      toast("That message no longer exists.");
      closeMessage();
    } else {
      toast(`Could not open the message: ${err.message}`);
    }
  }
}

function closeMessage() {
  state.selectedId = null;
  state.message = null;
  view.clear();
  list.select(null);
  $("view-empty").hidden = false;
  document.body.classList.remove("reading");
  writeHash();
}

// ---- actions -------------------------------------------------------------------------

function applyLocal(ids, patch) {
  // the rows on screen that are among ids (a bulk change names up to every message stored)
  const wanted = new Set(ids);
  for (const m of state.messages) {
    if (wanted.has(m.ID)) {
      Object.assign(m, patch);
      list.update(m);
    }
  }
}

async function setRead(ids, read, { quiet = false } = {}) {
  applyLocal(ids, { Read: read });
  if (state.message && ids.includes(state.message.ID)) syncReadButton();
  try {
    await api.setRead(ids, read);
    refreshCounts();
  } catch (err) {
    if (!quiet) toast(`Could not update: ${err.message}`);
  }
}

function currentRead() {
  const s = state.messages.find((m) => m.ID === state.selectedId);
  return s ? s.Read : true;
}

function syncReadButton() {
  const read = currentRead();
  const btn = $("read-btn");
  btn.querySelector("span").textContent = read ? "Mark unread" : "Mark read";
  btn.querySelector("use").setAttribute("href", read ? "#i-mail" : "#i-mail-open");
}

function toggleRead() {
  if (state.selectedId) setRead([state.selectedId], !currentRead());
}

async function deleteSelected() {
  const id = state.selectedId;
  if (!id) return;
  const next = list.neighbour(1) || list.neighbour(-1);
  try {
    await api.remove([id]);
  } catch (err) {
    toast(`Could not delete: ${err.message}`);
    return;
  }
  removeLocal([id]);
  toast("Message deleted.");
  if (next && next !== id) openMessage(next);
  else closeMessage();
}

function removeLocal(ids) {
  const before = state.messages.length;
  list.remove(ids);
  state.messages = list.messages;
  state.total = Math.max(0, state.total - (before - state.messages.length));
  if (ids.includes(state.selectedId)) closeMessage();
  renderList();
  refreshCounts();
  if (isGrouped()) refreshList(); // conversation counts changed
  if (!state.messages.length && state.total) {
    refreshList.cancel();
    loadList(); // the page emptied (a bulk delete): the next messages at once
  }
}

async function deleteAll() {
  const dialog = $("confirm-dialog");
  const scoped = Boolean(state.mailbox);
  $("confirm-title").textContent = scoped ? `Delete mailbox ${state.mailbox}?` : "Delete all messages?";
  $("confirm-text").textContent = scoped
    ? `Every message delivered to ${state.mailbox} will be removed. This cannot be undone.`
    : "Every message in every mailbox will be removed. This cannot be undone.";
  $("confirm-ok").textContent = scoped ? "Delete mailbox" : "Delete all";
  dialog.returnValue = "";
  dialog.showModal();
  const answer = await new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true }));
  if (answer !== "ok") return;
  try {
    if (scoped) await api.removeMailbox(state.mailbox);
    else await api.removeAll();
  } catch (err) {
    toast(`Could not delete: ${err.message}`);
    return;
  }
  closeMessage();
  toast(scoped ? "Mailbox deleted." : "All messages deleted.");
  if (scoped) await navigate({ mailbox: "", start: 0, id: null });
  else await loadList();
  refreshCounts();
}

/** Ask for tags in the dialog (Enter saves); null when cancelled. */
async function askTags(initial, label) {
  const dialog = $("tag-dialog");
  const input = $("tag-input");
  $("tag-label").textContent = label;
  input.value = initial.join(", ");
  dialog.returnValue = "";
  dialog.showModal();
  input.focus();
  input.select();
  const answer = await new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true }));
  if (answer !== "ok") return null;
  return [...new Set(input.value.split(",").map((t) => t.trim()).filter(Boolean))];
}

async function editTags() {
  if (!state.message) return;
  const id = state.message.ID;
  const tags = await askTags(state.message.Tags || [], "Comma-separated tags for this message");
  if (!tags) return;
  try {
    await api.setTags([id], tags);
  } catch (err) {
    toast(`Could not save tags: ${err.message}`);
    return;
  }
  if (state.message && state.message.ID === id) {
    state.message.Tags = tags;
    view.renderTags(tags);
  }
  applyLocal([id], { Tags: tags });
  refreshTags();
}

function fillTagList(tags) {
  const dl = $("tag-list");
  dl.replaceChildren(...tags.map((t) => Object.assign(document.createElement("option"), { value: t })));
}

async function markAllRead() {
  if (!state.query) {
    try {
      if (state.mailbox) await api.markMailboxRead(state.mailbox);
      else await api.markAllRead();
    } catch (err) {
      toast(`Could not update: ${err.message}`);
      return;
    }
    applyLocal(state.messages.map((m) => m.ID), { Read: true });
    if (state.message) syncReadButton();
    refreshCounts();
    return;
  }
  // A search: mark what is on screen.
  const ids = state.messages.filter((m) => !m.Read).map((m) => m.ID);
  if (ids.length) await setRead(ids, true);
}

// ---- selection and bulk actions -------------------------------------------------------

function checkedIds() {
  return [...state.checked];
}

/** A row's checkbox changed; with Shift, every row between it and the last one changes too. */
function checkRow(id, on, range) {
  const ids = state.messages.map((m) => m.ID);
  if (range && state.lastChecked && ids.includes(state.lastChecked)) {
    const [a, b] = [ids.indexOf(state.lastChecked), ids.indexOf(id)].sort((x, y) => x - y);
    for (const other of ids.slice(a, b + 1)) {
      if (on) state.checked.add(other);
      else state.checked.delete(other);
    }
  } else if (on) {
    state.checked.add(id);
  } else {
    state.checked.delete(id);
  }
  state.lastChecked = id;
  syncChecked();
}

function clearChecked() {
  state.checked.clear();
  state.lastChecked = null;
  syncChecked();
}

/** Drop selected IDs that are no longer on the page (deleted, or the page changed under them). */
function pruneChecked() {
  const here = new Set(state.messages.map((m) => m.ID));
  for (const id of state.checked) if (!here.has(id)) state.checked.delete(id);
  syncChecked();
}

function syncChecked() {
  const n = state.checked.size;
  const shown = isGrouped() ? 0 : state.messages.length;
  list.setChecked(state.checked);
  const all = $("select-all");
  all.checked = n > 0 && n === shown;
  all.indeterminate = n > 0 && n < shown;
  all.disabled = !shown;
  all.hidden = isGrouped();
  $("bulk-tools").hidden = n === 0;
  $("list-tools-main").hidden = n > 0;
  $("bulk-count").textContent = `${formatNumber(n)} selected`;
}

function renderBulkActions() {
  const bar = $("bulk-actions");
  setChildren(bar, bulkActions().map((a) => el("button", {
    type: "button",
    class: `btn btn-small${a.danger ? " btn-danger" : ""}`,
    id: `bulk-${a.key}`,
    title: a.label,
    onclick: async () => {
      const ids = checkedIds();
      if (!ids.length) return;
      const messages = state.messages.filter((m) => state.checked.has(m.ID));
      try {
        await a.run(ids, {
          messages,
          toast,
          done: () => {
            clearChecked();
            refreshList();
          },
        });
      } catch (err) {
        toast(`Could not ${a.label.toLowerCase()}: ${err.message}`);
      }
    },
  }, a.icon ? icon(a.icon) : null, el("span", { text: a.label }))));
}

registerBulkAction({
  key: "read",
  order: 10,
  label: "Mark read",
  icon: "mail-open",
  run: async (ids) => {
    await setRead(ids, true);
    clearChecked();
  },
});
registerBulkAction({
  key: "unread",
  order: 20,
  label: "Mark unread",
  icon: "mail",
  run: async (ids) => {
    await setRead(ids, false);
    clearChecked();
  },
});
registerBulkAction({
  key: "tags",
  order: 30,
  label: "Tags…",
  icon: "tag",
  run: async (ids, ctx) => {
    // The tags every selected message has are the starting point; what is saved replaces
    // the tags of each (PUT /api/v1/tags sets a message's tags).
    const sets = ctx.messages.map((m) => new Set(m.Tags || []));
    const common = sets.length ? [...sets[0]].filter((t) => sets.every((x) => x.has(t))) : [];
    const tags = await askTags(common, `Comma-separated tags for ${formatNumber(ids.length)} messages (replaces theirs)`);
    if (!tags) return;
    await api.setTags(ids, tags);
    applyLocal(ids, { Tags: tags });
    if (state.message && ids.includes(state.message.ID)) {
      state.message.Tags = tags;
      view.renderTags(tags);
    }
    refreshTags();
    clearChecked();
  },
});
registerBulkAction({
  key: "delete",
  order: 90,
  label: "Delete",
  icon: "trash",
  danger: true,
  run: async (ids) => {
    await api.remove(ids);
    removeLocal(ids);
    clearChecked();
    toast(`${formatNumber(ids.length)} message${ids.length === 1 ? "" : "s"} deleted.`);
  },
});

// ---- theme ---------------------------------------------------------------------------

const THEMES = ["system", "light", "dark"];
const THEME_LABEL = { system: "follows the system", light: "light", dark: "dark" };
const THEME_ICON = { system: "auto", light: "sun", dark: "moon" };

function storedTheme() {
  try {
    const t = localStorage.getItem(THEME_KEY);
    return THEMES.includes(t) ? t : "system";
  } catch {
    return "system";
  }
}

/** Light, dark, or the system's choice (the default); remembered in this browser. */
function applyTheme(theme, save = false) {
  const root = document.documentElement;
  if (theme === "system") delete root.dataset.theme;
  else root.dataset.theme = theme;
  const btn = $("theme-btn");
  const next = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
  btn.setAttribute("aria-label", `Theme: ${THEME_LABEL[theme]}. Switch to ${THEME_LABEL[next]}`);
  btn.title = `Theme: ${THEME_LABEL[theme]} (click for ${THEME_LABEL[next]})`;
  btn.dataset.theme = theme;
  btn.querySelector("use").setAttribute("href", `#i-${THEME_ICON[theme]}`);
  if (save) {
    try {
      localStorage.setItem(THEME_KEY, theme);
    } catch {
      // private mode: for this page only
    }
  }
}

// ---- live events ---------------------------------------------------------------------

function matchesView(summary) {
  if (state.query) return false; // the server decides what matches a search: reload instead
  return !state.mailbox || (summary.Mailboxes || []).includes(state.mailbox);
}

function onEvent(type, data) {
  switch (type) {
    case "new": {
      refreshCounts();
      if (!data) break;
      notify(data);
      if (isGrouped()) {
        if (state.start === 0 && matchesView(data)) refreshThreads();
      } else if (state.query) {
        refreshList();
      } else if (matchesView(data)) {
        if (state.start === 0) {
          list.prepend(data, state.limit);
          state.messages = list.messages;
          state.total += 1;
          renderListMeta();
        } else {
          state.pending += 1;
          state.total += 1;
          updateBanner();
        }
      }
      break;
    }
    case "update": {
      if (isGrouped()) refreshList(); // unread counts of conversations
      if (data && typeof data.ID === "string" && "Subject" in data) {
        // A whole new summary (e.g. once the indexer filled snippet and attachments).
        applyLocal([data.ID], data);
        refreshCounts();
        break;
      }
      const ids = data?.IDs || (data?.ID ? [data.ID] : []);
      const patch = {};
      if (data && "Read" in data) patch.Read = data.Read;
      if (data && "Tags" in data) {
        patch.Tags = data.Tags;
        refreshTags();
      }
      if (ids.length && Object.keys(patch).length) {
        applyLocal(ids, patch);
        if (state.message && ids.includes(state.message.ID)) {
          if (patch.Tags) {
            state.message.Tags = patch.Tags;
            view.renderTags(patch.Tags);
          }
          syncReadButton();
        }
      } else {
        refreshList();
      }
      refreshCounts();
      break;
    }
    case "delete": {
      const ids = data?.IDs || (data?.ID ? [data.ID] : []);
      if (ids.length) queueDeletes(ids);
      else refreshList();
      break;
    }
    case "truncate":
      // Everything, or one mailbox (the frame does not say which): reload what is shown.
      refreshList();
      refreshCounts();
      if (state.selectedId) checkSelectedStillExists();
      break;
    case "prune":
    case "reconnect":
      refreshList();
      refreshCounts();
      break;
    case "stats":
      if (data && typeof data.Unread === "number") {
        sidebar.setTotals(data.Total ?? sidebar.total, data.Unread);
        updateTitle();
      }
      break;
    default:
      break;
  }
}

// The server sends one "delete" frame per message: batch them into one re-render.
const deleteBatch = new Set();
const flushDeletes = debounce(() => {
  const ids = [...deleteBatch];
  deleteBatch.clear();
  if (ids.length) removeLocal(ids);
}, 30);
function queueDeletes(ids) {
  for (const id of ids) deleteBatch.add(id);
  flushDeletes();
}

async function checkSelectedStillExists() {
  const id = state.selectedId;
  try {
    await api.message(id);
  } catch (err) {
    if (err.status === 404 && state.selectedId === id) closeMessage();
  }
}

function renderListMeta() {
  $("list-count").textContent = pageLabel(state.start, state.messages.length, state.total);
  $("page-info").textContent = pageLabel(state.start, state.messages.length, state.total);
  $("pager").hidden = !state.total;
  $("next-page").disabled = state.start + state.messages.length >= state.total;
  $("empty").hidden = state.messages.length > 0;
  $("list").hidden = state.messages.length === 0;
}

function updateBanner() {
  const show = state.pending > 0;
  $("list-banner").hidden = !show;
  if (show) $("banner-btn").textContent = `${formatNumber(state.pending)} new message${state.pending === 1 ? "" : "s"} — show`;
}

function onConnState(s) {
  const conn = $("conn");
  conn.dataset.state = s;
  conn.querySelector(".conn-label").textContent = s === "open" ? "live" : s === "connecting" ? "connecting…" : "offline, retrying";
}

function updateTitle() {
  const unread = sidebar.unread;
  const name = state.label ? `${state.label} - postroom` : "postroom"; // --label names the server
  document.title = unread ? `(${formatNumber(unread)}) ${name}` : name;
}

// ---- notifications -------------------------------------------------------------------

function notify(summary) {
  if (!("Notification" in window) || Notification.permission !== "granted" || !document.hidden) return;
  try {
    const n = new Notification(summary.Subject || "(no subject)", {
      body: `From ${shortAddress(summary.From) || "unknown"}${summary.Snippet ? `\n${summary.Snippet}` : ""}`,
      tag: `postroom-${summary.ID}`,
      icon: "favicon.svg",
    });
    n.addEventListener("click", () => {
      window.focus();
      openMessage(summary.ID);
      n.close();
    });
  } catch {
    // some platforms only allow notifications from a service worker
  }
}

function setupNotifyButton() {
  const btn = $("notify-btn");
  if (!("Notification" in window) || Notification.permission !== "default") return;
  btn.hidden = false;
  btn.addEventListener("click", async () => {
    const result = await Notification.requestPermission();
    btn.hidden = true;
    toast(result === "granted" ? "Desktop notifications are on." : "Notifications stay off.");
  });
}

// ---- small UI bits -------------------------------------------------------------------

let toastTimer = 0;
function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    t.hidden = true;
  }, 3500);
}

/**
 * The list failed to load (a search the server cannot parse, the server gone): say why in
 * full, with a retry, and show no stale results under it (they would read as the answer).
 */
function setError(text) {
  const box = $("list-error");
  if (!text) {
    box.hidden = true;
    return;
  }
  $("list-error-text").textContent = text;
  box.hidden = false;
  state.messages = [];
  state.threads = [];
  state.total = 0;
  list.render([], state.selectedId);
  $("list").hidden = true;
  $("empty").hidden = true;
  $("pager").hidden = true;
  $("list-count").textContent = "";
}

// A load in flight: after a moment (quick answers should not flicker) the list shows a
// progress bar and "Searching…" / "Loading…" in place of its count.
const BUSY_DELAY_MS = 120;
let busyTimer = 0;
function setBusy(abort) {
  clearTimeout(busyTimer);
  const pane = $("list-pane");
  if (!abort) {
    pane.removeAttribute("aria-busy");
    document.body.classList.remove("busy");
    $("list-progress").hidden = true;
    return;
  }
  document.body.classList.add("busy");
  busyTimer = setTimeout(() => {
    if (listAbort !== abort) return;
    pane.setAttribute("aria-busy", "true");
    $("list-progress").hidden = false;
    $("list-count").textContent = state.query ? "Searching…" : "Loading…";
  }, BUSY_DELAY_MS);
}

function openDrawer() {
  document.body.classList.add("drawer-open");
  $("scrim").hidden = false;
  $("menu-btn").setAttribute("aria-expanded", "true");
  $("sidebar").querySelector("a")?.focus();
}

function closeDrawer() {
  document.body.classList.remove("drawer-open");
  $("scrim").hidden = true;
  $("menu-btn").setAttribute("aria-expanded", "false");
}

// ---- keyboard ------------------------------------------------------------------------

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

// ---- start ---------------------------------------------------------------------------

// ---- sidebar width -------------------------------------------------------------------

const SIDEBAR_MIN = 180;
const SIDEBAR_MAX = 560;
const SIDEBAR_KEY = "postroom.sidebarWidth";

function setSidebarWidth(px, save = true) {
  const w = Math.round(Math.min(SIDEBAR_MAX, Math.max(SIDEBAR_MIN, px)));
  document.documentElement.style.setProperty("--sidebar-w", `${w}px`);
  $("sidebar-resizer").setAttribute("aria-valuenow", String(w));
  if (save) {
    try {
      localStorage.setItem(SIDEBAR_KEY, String(w));
    } catch {
      // private mode: the width lasts for this page only
    }
  }
}

/** The mailbox column is as wide as the person drags it (or sets it with arrow keys). */
function wireSidebarResize() {
  const handle = $("sidebar-resizer");
  let saved = 0;
  try {
    saved = Number(localStorage.getItem(SIDEBAR_KEY)) || 0;
  } catch {
    saved = 0;
  }
  if (saved) setSidebarWidth(saved, false);
  handle.addEventListener("pointerdown", (ev) => {
    ev.preventDefault();
    handle.setPointerCapture(ev.pointerId);
    const left = $("sidebar").getBoundingClientRect().left;
    const move = (e) => setSidebarWidth(e.clientX - left, false);
    const up = (e) => {
      handle.removeEventListener("pointermove", move);
      handle.removeEventListener("pointerup", up);
      setSidebarWidth(e.clientX - left);
    };
    handle.addEventListener("pointermove", move);
    handle.addEventListener("pointerup", up);
  });
  handle.addEventListener("keydown", (ev) => {
    const now = $("sidebar").getBoundingClientRect().width;
    if (ev.key === "ArrowLeft" || ev.key === "ArrowRight") {
      ev.preventDefault();
      setSidebarWidth(now + (ev.key === "ArrowRight" ? 24 : -24));
    }
  });
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
  $("theme-btn").addEventListener("click", () => {
    const now = storedTheme();
    applyTheme(THEMES[(THEMES.indexOf(now) + 1) % THEMES.length], true);
  });
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

/** The search box's hint, shorter where the box is narrow. */
function fitSearchHint() {
  const narrow = matchMedia("(max-width: 760px)").matches;
  $("search").placeholder = narrow ? "Search mail" : "Search mail (from: to: subject: is:unread has:attachment tag:)";
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
