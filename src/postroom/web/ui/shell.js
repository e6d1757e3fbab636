// postroom web UI: the page around the panes: theme, toast, the list's error and busy
// states, the phone drawer, the sidebar's width, the title and the live-connection dot.

import { $, list, sidebar, state } from "./state.js";
import { formatNumber } from "./util.js";

const THEME_KEY = "postroom.theme";

const THEMES = ["system", "light", "dark"];
const THEME_LABEL = { system: "follows the system", light: "light", dark: "dark" };
const THEME_ICON = { system: "auto", light: "sun", dark: "moon" };

export function storedTheme() {
  try {
    const t = localStorage.getItem(THEME_KEY);
    return THEMES.includes(t) ? t : "system";
  } catch {
    return "system";
  }
}

/** The theme button: system -> light -> dark -> system, remembered in this browser. */
export function cycleTheme() {
  applyTheme(THEMES[(THEMES.indexOf(storedTheme()) + 1) % THEMES.length], true);
}

/** Light, dark, or the system's choice (the default); remembered in this browser. */
export function applyTheme(theme, save = false) {
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

export function onConnState(s) {
  const conn = $("conn");
  conn.dataset.state = s;
  conn.querySelector(".conn-label").textContent = s === "open" ? "live" : s === "connecting" ? "connecting…" : "offline, retrying";
}

export function updateTitle() {
  const unread = sidebar.unread;
  const name = state.label ? `${state.label} - postroom` : "postroom"; // --label names the server
  document.title = unread ? `(${formatNumber(unread)}) ${name}` : name;
}

let toastTimer = 0;
export function toast(text) {
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
export function setError(text) {
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
let busyFor = null; // the load the progress bar is for
export function setBusy(abort) {
  clearTimeout(busyTimer);
  busyFor = abort;
  const pane = $("list-pane");
  if (!abort) {
    pane.removeAttribute("aria-busy");
    document.body.classList.remove("busy");
    $("list-progress").hidden = true;
    return;
  }
  document.body.classList.add("busy");
  busyTimer = setTimeout(() => {
    if (busyFor !== abort) return;
    pane.setAttribute("aria-busy", "true");
    $("list-progress").hidden = false;
    $("list-count").textContent = state.query ? "Searching…" : "Loading…";
  }, BUSY_DELAY_MS);
}

export function openDrawer() {
  document.body.classList.add("drawer-open");
  $("scrim").hidden = false;
  $("menu-btn").setAttribute("aria-expanded", "true");
  $("sidebar").querySelector("a")?.focus();
}

export function closeDrawer() {
  document.body.classList.remove("drawer-open");
  $("scrim").hidden = true;
  $("menu-btn").setAttribute("aria-expanded", "false");
}

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
export function wireSidebarResize() {
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

/** The search box's hint, shorter where the box is narrow. */
export function fitSearchHint() {
  const narrow = matchMedia("(max-width: 760px)").matches;
  $("search").placeholder = narrow ? "Search mail" : "Search mail (from: to: subject: is:unread has:attachment tag:)";
}
