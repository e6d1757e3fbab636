// Actions on the selected messages: the bar that replaces the list tools while messages
// are selected. app.js registers the built-ins (mark read, mark unread, tags, delete);
// other modules add theirs the same way (release, from the outbound work), at load time.

/**
 * @typedef {object} BulkAction
 * @property {string} key     unique; the button's id is `bulk-KEY`
 * @property {number} order   position (built-ins: read 10, unread 20, tags 30, delete 90)
 * @property {string} label   the button's text
 * @property {string} [icon]  a symbol of the sprite in index.html (without "i-")
 * @property {boolean} [danger]
 * @property {(ids: string[], ctx: BulkContext) => (void | Promise<void>)} run
 *
 * @typedef {object} BulkContext
 * @property {object[]} messages  the selected summaries (as the list shows them)
 * @property {(text: string) => void} toast
 * @property {() => void} done    clear the selection and reload the list
 */

const registry = [];

/** Add (or replace, by key) an action of the selection bar. */
export function registerBulkAction(spec) {
  const i = registry.findIndex((a) => a.key === spec.key);
  if (i >= 0) registry.splice(i, 1);
  registry.push(spec);
  registry.sort((a, b) => a.order - b.order);
}

/** The registered actions, in order. */
export function bulkActions() {
  return [...registry];
}
