// postroom web UI: the ticked rows (with Shift ranges) and the bar of actions on them that
// replaces the list tools; the built-in actions are registered here (actions.js holds the
// registry).

import { bulkActions, registerBulkAction } from "./actions.js";
import { api } from "./api.js";
import { applyLocal, askTags, removeLocal, setRead } from "./commands.js";
import { refreshList, refreshTags } from "./nav.js";
import { toast } from "./shell.js";
import { $, isGrouped, list, state, view } from "./state.js";
import { el, formatNumber, icon, setChildren } from "./util.js";

function checkedIds() {
  return [...state.checked];
}

/** A row's checkbox changed; with Shift, every row between it and the last one changes too. */
export function checkRow(id, on, range) {
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

export function clearChecked() {
  state.checked.clear();
  state.lastChecked = null;
  syncChecked();
}

/** Drop selected IDs that are no longer on the page (deleted, or the page changed under them). */
export function pruneChecked() {
  const here = new Set(state.messages.map((m) => m.ID));
  for (const id of state.checked) if (!here.has(id)) state.checked.delete(id);
  syncChecked();
}

export function syncChecked() {
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

export function renderBulkActions() {
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
