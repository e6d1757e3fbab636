// postroom web UI: what is on screen. The URL hash <-> state, loading and rendering the list
// (messages or conversations), the sidebar's mailboxes, tags and counts, opening a message.

import { api } from "./api.js";
import { fillTagList, setRead, syncReadButton } from "./commands.js";
import { pageLabel } from "./list.js";
import { updateBanner } from "./live.js";
import { clearChecked, pruneChecked } from "./selection.js";
import { closeDrawer, setBusy, setError, toast, updateTitle } from "./shell.js";
import { $, isGrouped, list, sidebar, state, view } from "./state.js";
import { debounce, el, icon, setChildren } from "./util.js";

let listAbort = null;
let messageAbort = null;

// ---- URL hash <-> state -------------------------------------------------------------

export function readHash() {
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
export async function navigate({ mailbox = state.mailbox, query = state.query, start = state.start, id = state.selectedId, grouped = state.grouped } = {}) {
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

/** Cancel the list request in flight and start a new one (its signal; the busy state shows). */
function startListLoad() {
  listAbort?.abort();
  const abort = new AbortController();
  listAbort = abort;
  setBusy(abort);
  return abort;
}

/** A page past the end (mail deleted meanwhile): move to the last page; true if it moved. */
function clampStart() {
  if (!(state.start && state.start >= state.total && state.total)) return false;
  state.start = Math.max(0, Math.floor((state.total - 1) / state.limit) * state.limit);
  return true;
}

export async function loadList({ keepScroll = false } = {}) {
  if (isGrouped()) return loadThreads({ keepScroll });
  const abort = startListLoad();
  const scroll = $("list").scrollTop;
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
    if (clampStart()) return loadList();
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
  const abort = startListLoad();
  const scroll = $("list").scrollTop;
  try {
    const data = await api.threads({ mailbox: state.mailbox, start: state.start, limit: state.limit, signal: abort.signal });
    if (abort.signal.aborted) return;
    state.threads = data.threads || [];
    state.messages = [];
    state.total = data.total ?? state.threads.length;
    if (clampStart()) return loadThreads();
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

export function renderList() {
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

export async function loadMailboxes() {
  try {
    const data = await api.mailboxes();
    sidebar.setMailboxes(data.mailboxes || []);
  } catch {
    sidebar.setMailboxes([]); // the extension may be missing (plain Mailpit API): All still works
  }
}

/** The tags in use, in the sidebar (each lists its messages) and in the tag dialog's suggestions. */
export async function loadTags() {
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
export function searchTag(tag) {
  const q = tagQuery(tag);
  $("search").value = q;
  closeDrawer();
  navigate({ query: q, start: 0 });
}

export async function loadCounts() {
  // Totals for "All" and the title come from an unfiltered one-row listing.
  try {
    const data = await api.messages({ start: 0, limit: 1 });
    sidebar.setTotals(data.total ?? 0, data.unread ?? 0);
    updateTitle();
  } catch {
    // shown on the next list load
  }
}

export const refreshCounts = debounce(() => {
  loadMailboxes();
  loadCounts();
}, 200);
export const refreshTags = debounce(() => loadTags(), 300);
export const refreshList = debounce(() => loadList({ keepScroll: true }), 300);
// A new message joins its conversation when the indexer reaches it, a moment after it
// arrives (and the WebSocket does not announce that): the grouped list reloads a bit later.
export const refreshThreads = debounce(() => loadList({ keepScroll: true }), 1000);

/** Open a conversation of the grouped list: its newest message, on the Thread tab. */
export async function openThread(threadId) {
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

export function syncGroupButton() {
  const btn = $("group-btn");
  btn.hidden = !view.threads;
  btn.setAttribute("aria-pressed", state.grouped ? "true" : "false");
  btn.disabled = Boolean(state.query);
  btn.title = state.query ? "Search results are messages; clear the search to group by conversation" : "Group by conversation (g)";
}

export function toggleGrouped() {
  if (!view.threads) return;
  state.threadId = null;
  navigate({ grouped: !state.grouped, start: 0 });
}

export async function openMessage(id) {
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

export function closeMessage() {
  state.selectedId = null;
  state.message = null;
  view.clear();
  list.select(null);
  $("view-empty").hidden = false;
  document.body.classList.remove("reading");
  writeHash();
}
