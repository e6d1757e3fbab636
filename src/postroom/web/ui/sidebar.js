// The mailbox sidebar: "All" first, then one entry per mailbox with its total and unread
// count, in natural order (user2 before user10), with a filter once there are many. Only
// the first MAX_SHOWN matches are in the DOM, so 10,000 mailboxes cost what 300 do.

import { el, formatNumber, icon, setChildren } from "./util.js";

const MAX_SHOWN = 300;
const FILTER_FROM = 8; // the filter box appears once there are more mailboxes than this
// made on first use: Chromium's first Intl.Collator costs tens of ms, not to be paid before
// the first page of the list is on screen
let collator = null;
const byName = (a, b) => (collator ??= new Intl.Collator(undefined, { numeric: true, sensitivity: "base" })).compare(a.Name, b.Name);

/** "local" and "@domain" of an address-like mailbox name (a name without "@" is all local). */
function splitName(name) {
  const at = name.lastIndexOf("@");
  return at > 0 ? [name.slice(0, at), name.slice(at)] : [name, ""];
}

export class Sidebar {
  /**
   * @param {HTMLElement} root <ul> for the entries
   * @param {(name: string) => void} onSelect "" selects All
   * @param {{filter?: HTMLInputElement, more?: HTMLElement, tags?: HTMLElement, onTag?: (tag: string) => void}} [extra]
   */
  constructor(root, onSelect, extra = {}) {
    this.root = root;
    this.onSelect = onSelect;
    this.filterInput = extra.filter || null;
    this.moreNote = extra.more || null;
    this.mailboxes = [];
    this.total = 0;
    this.unread = 0;
    this.current = "";
    this.filter = "";
    root.addEventListener("click", (ev) => {
      const a = ev.target.closest("a[data-mailbox]");
      if (!a) return;
      ev.preventDefault();
      onSelect(a.dataset.mailbox);
    });
    if (this.filterInput) {
      this.filterInput.addEventListener("input", () => {
        this.filter = this.filterInput.value.trim().toLowerCase();
        this.render();
      });
      this.filterInput.addEventListener("keydown", (ev) => {
        if (ev.key === "Escape" && this.filterInput.value) {
          ev.stopPropagation();
          this.filterInput.value = "";
          this.filter = "";
          this.render();
        } else if (ev.key === "Enter") {
          ev.preventDefault();
          this.root.querySelector("a[data-mailbox]:not([data-mailbox=''])")?.click();
        }
      });
    }
  }

  /** @param {Array<{Name, Total, Unread}>} mailboxes */
  setMailboxes(mailboxes) {
    this.mailboxes = [...mailboxes].sort(byName);
    this.render();
  }

  setTotals(total, unread) {
    if (total === this.total && unread === this.unread) return;
    this.total = total;
    this.unread = unread;
    this.render();
  }

  setCurrent(name) {
    if (name === this.current) return;
    this.current = name;
    this.render();
  }

  entry(name, label, total, unread, iconName) {
    const current = name === this.current;
    const [local, domain] = name ? splitName(label) : [label, ""];
    return el(
      "li",
      {},
      el(
        "a",
        {
          href: `#${new URLSearchParams(name ? { mailbox: name } : {}).toString()}`,
          class: `mailbox${current ? " current" : ""}${unread ? " has-unread" : ""}`,
          "aria-current": current ? "page" : null,
          dataset: { mailbox: name },
          title: `${label}: ${formatNumber(total)} messages, ${formatNumber(unread)} unread`,
        },
        icon(iconName),
        // The domain gives way first: with many mailboxes on one domain the local parts
        // are what tells them apart.
        el("span", { class: "mailbox-name" }, el("span", { class: "mb-local", text: local }), domain ? el("span", { class: "mb-domain", text: domain }) : null),
        // Each number keeps one meaning: the pill is always unread, the grey figure always the total.
        unread ? el("span", { class: "badge", "aria-label": `${formatNumber(unread)} unread`, text: formatNumber(unread) }) : null,
        el("span", { class: "count", "aria-label": `${formatNumber(total)} messages`, text: formatNumber(total) }),
      ),
    );
  }

  render() {
    const items = [this.entry("", "All messages", this.total, this.unread, "inbox")];
    // What the API lists: an emptied mailbox (after Delete all) is not among them.
    const visible = this.mailboxes;
    const matches = this.filter ? visible.filter((mb) => mb.Name.includes(this.filter)) : visible;
    for (const mb of matches.slice(0, MAX_SHOWN)) items.push(this.entry(mb.Name, mb.Name, mb.Total, mb.Unread, "user"));
    setChildren(this.root, items);
    if (this.filterInput) this.filterInput.parentElement.hidden = visible.length <= FILTER_FROM && !this.filter;
    if (this.moreNote) {
      const rest = matches.length - Math.min(matches.length, MAX_SHOWN);
      this.moreNote.hidden = !rest && !(this.filter && !matches.length);
      this.moreNote.textContent = rest
        ? `${formatNumber(rest)} more — filter to find one`
        : "No mailbox matches";
    }
  }
}
