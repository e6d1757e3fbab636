// The mailbox sidebar: "All" first, then one entry per mailbox with unread counts.

import { el, formatNumber, icon, setChildren } from "./util.js";

export class Sidebar {
  /**
   * @param {HTMLElement} root <ul> for the entries
   * @param {(name: string) => void} onSelect "" selects All
   */
  constructor(root, onSelect) {
    this.root = root;
    this.onSelect = onSelect;
    this.mailboxes = [];
    this.total = 0;
    this.unread = 0;
    this.current = "";
    root.addEventListener("click", (ev) => {
      const a = ev.target.closest("a[data-mailbox]");
      if (!a) return;
      ev.preventDefault();
      onSelect(a.dataset.mailbox);
    });
  }

  /** @param {Array<{Name, Total, Unread}>} mailboxes */
  setMailboxes(mailboxes) {
    this.mailboxes = [...mailboxes].sort((a, b) => a.Name.localeCompare(b.Name));
    this.render();
  }

  setTotals(total, unread) {
    this.total = total;
    this.unread = unread;
    this.render();
  }

  setCurrent(name) {
    this.current = name;
    this.render();
  }

  entry(name, label, total, unread, iconName) {
    const current = name === this.current;
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
        el("span", { class: "mailbox-name", text: label }),
        // Each number keeps one meaning: the pill is always unread, the grey figure always the total.
        unread ? el("span", { class: "badge", "aria-label": `${formatNumber(unread)} unread`, text: formatNumber(unread) }) : null,
        el("span", { class: "count", "aria-label": `${formatNumber(total)} messages`, text: formatNumber(total) }),
      ),
    );
  }

  render() {
    const items = [this.entry("", "All messages", this.total, this.unread, "inbox")];
    for (const mb of this.mailboxes) items.push(this.entry(mb.Name, mb.Name, mb.Total, mb.Unread, "user"));
    setChildren(this.root, items);
  }
}
