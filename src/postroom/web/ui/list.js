// The message list: one page of summaries rendered as a listbox. Rows are rebuilt only
// for the page on screen (50 by default), so it stays fast whatever the store holds.

import { el, formatListTime, formatNumber, formatSize, icon, setChildren, shortAddress } from "./util.js";

/** One list row for a MessageSummary (`checked`: selected for a bulk action). */
export function renderRow(msg, selected, checked = false) {
  const from = shortAddress(msg.From) || "(no sender)";
  const to = (msg.To || []).map(shortAddress).filter(Boolean);
  const toText = to.length > 2 ? `${to.slice(0, 2).join(", ")} +${to.length - 2}` : to.join(", ");
  // Tag chips are buttons that list the messages with that tag (handled by the list).
  const tags = (msg.Tags || []).map((t) => el("button", { type: "button", class: "tag tag-link", tabindex: "-1", title: `Messages tagged ${t}`, dataset: { tag: t }, text: t }));
  const time = formatListTime(msg.Created);
  const label = [
    msg.Read ? "" : "Unread.",
    `From ${from}.`,
    `Subject ${msg.Subject || "(no subject)"}.`,
    time,
    msg.Attachments ? `${msg.Attachments} attachment${msg.Attachments === 1 ? "" : "s"}.` : "",
  ].filter(Boolean).join(" ");
  return el(
    "li",
    {
      class: `row${msg.Read ? "" : " unread"}${selected ? " selected" : ""}${checked ? " checked" : ""}`,
      role: "option",
      id: `msg-${msg.ID}`,
      "aria-selected": selected ? "true" : "false",
      "aria-label": label,
      dataset: { id: msg.ID },
    },
    el("span", { class: "row-lead" },
      // Out of the tab order: x selects the current row from the keyboard.
      el("input", { type: "checkbox", class: "check row-check", tabindex: "-1", "aria-label": `Select “${msg.Subject || "(no subject)"}”`, checked }),
      el("span", { class: "unread-dot", "aria-hidden": "true" })),
    el(
      "div",
      { class: "row-main" },
      el(
        "div",
        { class: "row-line" },
        el("span", { class: "row-from", text: from, title: msg.From ? msg.From.Address : "" }),
        msg.Attachments ? el("span", { class: "row-clip", title: `${msg.Attachments} attachment(s)` }, icon("clip")) : null,
        el("time", { class: "row-time", datetime: msg.Created, text: time }),
      ),
      el(
        "div",
        { class: "row-line" },
        el("span", { class: "row-subject", text: msg.Subject || "(no subject)" }),
        tags.length ? el("span", { class: "row-tags" }, tags) : null,
      ),
      el(
        "div",
        { class: "row-line row-sub" },
        el("span", { class: "row-to", text: toText ? `to ${toText}` : "" }),
        el("span", { class: "row-snippet", text: msg.Snippet || "" }),
        el("span", { class: "row-size", text: formatSize(msg.Size) }),
      ),
    ),
  );
}

/** One list row for a conversation (GET /api/v2/threads) in the grouped list mode. */
export function renderThreadRow(t, selected) {
  const people = (t.Participants || []).map(shortAddress).filter(Boolean);
  const who = people.length > 3 ? `${people.slice(0, 3).join(", ")} +${people.length - 3}` : people.join(", ");
  const time = formatListTime(t.LastActivity);
  const count = t.MessagesCount || 0;
  const label = [
    t.Unread ? `${t.Unread} unread.` : "",
    `Conversation of ${count} message${count === 1 ? "" : "s"}.`,
    `Subject ${t.Subject || "(no subject)"}.`,
    who ? `Between ${who}.` : "",
    time,
  ].filter(Boolean).join(" ");
  return el(
    "li",
    {
      class: `row thread-row${t.Unread ? " unread" : ""}${selected ? " selected" : ""}`,
      role: "option",
      id: `thr-${t.ThreadID}`,
      "aria-selected": selected ? "true" : "false",
      "aria-label": label,
      dataset: { thread: t.ThreadID },
    },
    el("span", { class: "unread-dot", "aria-hidden": "true" }),
    el(
      "div",
      { class: "row-main" },
      el(
        "div",
        { class: "row-line" },
        el("span", { class: "row-from", text: who || "(no participants)" }),
        count > 1 ? el("span", { class: "thread-count", text: formatNumber(count) }) : null,
        el("time", { class: "row-time", datetime: t.LastActivity, text: time }),
      ),
      el("div", { class: "row-line" }, el("span", { class: "row-subject", text: t.Subject || "(no subject)" })),
    ),
  );
}

export class MessageList {
  /**
   * @param {HTMLElement} root the <ul role=listbox>
   * @param {(id: string) => void} onOpen
   * @param {(threadId: string) => void} [onOpenThread] a row of the grouped mode was chosen
   */
  constructor(root, onOpen, onOpenThread = () => {}, { onCheck = () => {}, onTag = () => {} } = {}) {
    this.root = root;
    this.onOpen = onOpen;
    this.messages = [];
    this.selectedId = null;
    this.threads = null; // the conversations on screen in the grouped mode, else null
    this.selectedThread = null;
    this.checked = new Set();
    root.addEventListener("click", (ev) => {
      const check = ev.target.closest(".row-check");
      if (check) {
        onCheck(check.closest("li.row").dataset.id, check.checked, ev.shiftKey);
        return;
      }
      const chip = ev.target.closest(".tag-link");
      if (chip) {
        onTag(chip.dataset.tag);
        return;
      }
      const row = ev.target.closest("li.row");
      if (row && row.dataset.thread) onOpenThread(row.dataset.thread);
      else if (row) onOpen(row.dataset.id);
    });
    root.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && this.threads && this.selectedThread) {
        ev.preventDefault();
        onOpenThread(this.selectedThread);
      } else if (ev.key === "Enter" && this.selectedId) {
        ev.preventDefault();
        onOpen(this.selectedId);
      }
    });
  }

  /** Show conversations instead of messages (the grouped list mode). */
  renderThreads(threads, selectedThread) {
    this.threads = threads;
    this.messages = [];
    this.selectedThread = selectedThread;
    const frag = document.createDocumentFragment();
    for (const t of threads) frag.append(renderThreadRow(t, t.ThreadID === selectedThread));
    setChildren(this.root, frag);
    this.syncActive();
  }

  selectThread(threadId) {
    this.selectedThread = threadId;
    for (const row of this.root.querySelectorAll("li.row.selected")) {
      row.classList.remove("selected");
      row.setAttribute("aria-selected", "false");
    }
    const row = threadId ? this.root.querySelector(`#${CSS.escape(`thr-${threadId}`)}`) : null;
    if (row) {
      row.classList.add("selected");
      row.setAttribute("aria-selected", "true");
      row.scrollIntoView({ block: "nearest" });
    }
    this.syncActive();
  }

  /** The conversation `delta` rows away from the selected one (or the first). */
  neighbourThread(delta) {
    const list = this.threads || [];
    if (!list.length) return null;
    const i = list.findIndex((t) => t.ThreadID === this.selectedThread);
    if (i < 0) return list[delta > 0 ? 0 : list.length - 1].ThreadID;
    const j = i + delta;
    return j >= 0 && j < list.length ? list[j].ThreadID : null;
  }

  render(messages, selectedId) {
    this.threads = null;
    this.messages = messages;
    this.selectedId = selectedId;
    const frag = document.createDocumentFragment();
    for (const msg of messages) frag.append(renderRow(msg, msg.ID === selectedId, this.checked.has(msg.ID)));
    setChildren(this.root, frag);
    this.syncActive();
  }

  select(id) {
    this.selectedId = id;
    if (this.threads) return; // the grouped mode marks conversations (selectThread)
    for (const row of this.root.querySelectorAll("li.row.selected")) {
      row.classList.remove("selected");
      row.setAttribute("aria-selected", "false");
    }
    const row = id ? this.root.querySelector(`#${CSS.escape(`msg-${id}`)}`) : null;
    if (row) {
      row.classList.add("selected");
      row.setAttribute("aria-selected", "true");
      row.scrollIntoView({ block: "nearest" });
    }
    this.syncActive();
  }

  syncActive() {
    const id = this.threads
      ? (this.selectedThread && this.threads.some((t) => t.ThreadID === this.selectedThread) ? `thr-${this.selectedThread}` : null)
      : (this.selectedId && this.messages.some((m) => m.ID === this.selectedId) ? `msg-${this.selectedId}` : null);
    if (id) this.root.setAttribute("aria-activedescendant", id);
    else this.root.removeAttribute("aria-activedescendant");
  }

  /** Replace one row in place (read state or tags changed). */
  update(msg) {
    const i = this.messages.findIndex((m) => m.ID === msg.ID);
    if (i < 0) return;
    this.messages[i] = msg;
    const old = this.root.querySelector(`#${CSS.escape(`msg-${msg.ID}`)}`);
    if (old) old.replaceWith(renderRow(msg, msg.ID === this.selectedId, this.checked.has(msg.ID)));
  }

  /** Show which rows are selected for a bulk action. */
  setChecked(ids) {
    this.checked = new Set(ids);
    for (const row of this.root.querySelectorAll("li.row[data-id]")) {
      const on = this.checked.has(row.dataset.id);
      row.classList.toggle("checked", on);
      const box = row.querySelector(".row-check");
      if (box) box.checked = on;
    }
  }

  /** Insert a live arrival at the top; drop the last row if the page is full. */
  prepend(msg, limit) {
    if (this.messages.some((m) => m.ID === msg.ID)) return;
    this.messages.unshift(msg);
    const row = renderRow(msg, false);
    row.classList.add("arrived");
    this.root.prepend(row);
    while (this.messages.length > limit) {
      const gone = this.messages.pop();
      this.root.querySelector(`#${CSS.escape(`msg-${gone.ID}`)}`)?.remove();
    }
  }

  remove(ids) {
    const set = new Set(ids);
    this.messages = this.messages.filter((m) => !set.has(m.ID));
    for (const id of ids) this.root.querySelector(`#${CSS.escape(`msg-${id}`)}`)?.remove();
    this.syncActive();
  }

  /** The id `delta` rows away from the selection (or the first row). */
  neighbour(delta) {
    if (!this.messages.length) return null;
    const i = this.messages.findIndex((m) => m.ID === this.selectedId);
    if (i < 0) return this.messages[delta > 0 ? 0 : this.messages.length - 1].ID;
    const j = i + delta;
    return j >= 0 && j < this.messages.length ? this.messages[j].ID : null;
  }
}

/** "1–50 of 100,000" (or "... conversations" for the grouped mode). */
export function pageLabel(start, count, total, noun = "messages") {
  if (!total) return `0 ${noun}`;
  const range = `${formatNumber(start + 1)}–${formatNumber(start + count)} of ${formatNumber(total)}`;
  return noun === "messages" ? range : `${range} ${noun}`;
}
