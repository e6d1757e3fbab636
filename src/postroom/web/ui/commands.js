// postroom web UI: actions on messages: read/unread, delete (one, a mailbox, everything),
// tags, mark all read; applied to the rows on screen at once, then to the server.

import { api } from "./api.js";
import { closeMessage, loadList, navigate, openMessage, refreshCounts, refreshList, refreshTags, renderList } from "./nav.js";
import { toast } from "./shell.js";
import { $, isGrouped, list, state, view } from "./state.js";

export function applyLocal(ids, patch) {
  // the rows on screen that are among ids (a bulk change names up to every message stored)
  const wanted = new Set(ids);
  for (const m of state.messages) {
    if (wanted.has(m.ID)) {
      Object.assign(m, patch);
      list.update(m);
    }
  }
}

export async function setRead(ids, read, { quiet = false } = {}) {
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

export function syncReadButton() {
  const read = currentRead();
  const btn = $("read-btn");
  btn.querySelector("span").textContent = read ? "Mark unread" : "Mark read";
  btn.querySelector("use").setAttribute("href", read ? "#i-mail" : "#i-mail-open");
}

export function toggleRead() {
  if (state.selectedId) setRead([state.selectedId], !currentRead());
}

export async function deleteSelected() {
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

export function removeLocal(ids) {
  const before = state.messages.length;
  list.remove(ids);
  state.messages = list.messages;
  const removed = before - state.messages.length;
  state.total = Math.max(0, state.total - removed);
  if (ids.includes(state.selectedId)) closeMessage();
  if (!removed && !isGrouped()) {
    // None of them is on screen: most often the WebSocket announcing what this page just
    // deleted, while the page that replaces the emptied one is on its way. Asking for that
    // page again would abort the first answer and wait for a second one.
    refreshCounts();
    return;
  }
  renderList();
  refreshCounts();
  if (isGrouped()) refreshList(); // conversation counts changed
  if (!state.messages.length && state.total) {
    refreshList.cancel();
    loadList(); // the page emptied (a bulk delete): the next messages at once
  }
}

export async function deleteAll() {
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
export async function askTags(initial, label) {
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

export async function editTags() {
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

export function fillTagList(tags) {
  const dl = $("tag-list");
  dl.replaceChildren(...tags.map((t) => Object.assign(document.createElement("option"), { value: t })));
}

export async function markAllRead() {
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
