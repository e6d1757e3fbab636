// postroom web UI: live events from the WebSocket (new mail, changes, deletions, counts)
// applied to what is on screen, and desktop notifications of new mail.

import { api } from "./api.js";
import { applyLocal, removeLocal, syncReadButton } from "./commands.js";
import { pageLabel } from "./list.js";
import { closeMessage, openMessage, refreshCounts, refreshList, refreshTags, refreshThreads } from "./nav.js";
import { toast, updateTitle } from "./shell.js";
import { $, isGrouped, list, sidebar, state, view } from "./state.js";
import { debounce, formatNumber, shortAddress } from "./util.js";

function matchesView(summary) {
  if (state.query) return false; // the server decides what matches a search: reload instead
  return !state.mailbox || (summary.Mailboxes || []).includes(state.mailbox);
}

export function onEvent(type, data) {
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

export function updateBanner() {
  const show = state.pending > 0;
  $("list-banner").hidden = !show;
  if (show) $("banner-btn").textContent = `${formatNumber(state.pending)} new message${state.pending === 1 ? "" : "s"} — show`;
}

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

export function setupNotifyButton() {
  const btn = $("notify-btn");
  if (!("Notification" in window) || Notification.permission !== "default") return;
  btn.hidden = false;
  btn.addEventListener("click", async () => {
    const result = await Notification.requestPermission();
    btn.hidden = true;
    toast(result === "granted" ? "Desktop notifications are on." : "Notifications stay off.");
  });
}
