// postroom web UI: what the page shows (mailbox, search, page, selection, the open message)
// and the three panes that show it. Every other module reads and changes this one state.
//
// The modules of app.js call each other both ways (the panes' callbacks navigate, navigation
// re-renders the panes): an import cycle that ES modules allow because no module uses another's
// exports while it loads. Keep it so: at the top level a module only declares (and state.js
// builds the panes, whose classes are outside the cycle); everything that acts runs from
// main() in app.js, or later, from events.

import { MessageList } from "./list.js";
import { navigate, openMessage, openThread, searchTag } from "./nav.js";
import { checkRow } from "./selection.js";
import { toast } from "./shell.js";
import { Sidebar } from "./sidebar.js";
import { MessageView } from "./view.js";

export const PAGE_SIZES = [25, 50, 100, 200];
export const PAGE_SIZE_KEY = "postroom.pageSize";
export const $ = (id) => document.getElementById(id);

export const state = {
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
export const sidebar = new Sidebar($("mailboxes"), (name) => navigate({ mailbox: name, query: "", start: 0, id: null }), {
  filter: $("mailbox-filter"),
  more: $("mailbox-more"),
});
export const list = new MessageList($("list"), (id) => openMessage(id), (threadId) => openThread(threadId), {
  onCheck: (id, on, range) => checkRow(id, on, range),
  onTag: (tag) => searchTag(tag),
});
export const view = new MessageView(
  { root: $("message"), subject: $("msg-subject"), tags: $("msg-tags"), meta: $("msg-meta"), tabs: $("tabs"), panels: $("panels") },
  { openMessage: (id) => openMessage(id), toast, searchTag: (tag) => searchTag(tag) },
);

/** Whether the list shows conversations: asked for, offered by the server, and no search. */
export function isGrouped() {
  return state.grouped && view.threads && !state.query;
}
