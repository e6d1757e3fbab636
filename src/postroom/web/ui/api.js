// Thin client for postroom's HTTP API (Mailpit-compatible /api/v1 plus postroom's /api/v2;
// listings, messages, settings and events come from /api/v2, which adds ThreadID and
// Mailboxes to Mailpit's shapes).
// Every URL is relative to the page, so the UI also works when served under a webroot.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Absolute URL of an API path, resolved against the page (webroot-safe). */
export function url(path, params) {
  const u = new URL(path.replace(/^\//, ""), document.baseURI);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") u.searchParams.set(key, value);
  }
  return u.toString();
}

/** The answer boot.js asked for while the modules loaded, if it is for ``u``; taken once. */
function earlyAnswer(u) {
  const first = window.__postroomFirstList;
  if (!first) return null;
  window.__postroomFirstList = undefined; // the first listing takes it, or nobody does
  return first.url === u ? first.response : null;
}

async function request(method, path, { params, body, as = "json", signal, early = false } = {}) {
  const init = { method, signal, headers: { Accept: as === "json" ? "application/json" : "*/*" } };
  // Cross-site protection (docs/security.md): every state-changing call carries a JSON body.
  if (body === undefined && method !== "GET" && method !== "HEAD") body = {};
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const target = url(path, params);
  const res = await ((early && earlyAnswer(target)) || fetch(target, init));
  if (!res.ok) {
    let text = "";
    try {
      text = (await res.text()).trim();
    } catch {
      // keep the status line only
    }
    if (text.startsWith("{")) {
      try {
        const data = JSON.parse(text);
        text = data.Error || data.error || data.message || text;
      } catch {
        // not JSON after all
      }
    }
    throw new ApiError(res.status, text || `${res.status} ${res.statusText}`);
  }
  if (as === "text") return res.text();
  if (as === "none") return null;
  const type = res.headers.get("Content-Type") || "";
  return type.includes("json") ? res.json() : res.text();
}

const enc = encodeURIComponent;
let webuiOnce = null; // the server's settings, asked once per page (three parts of the UI read them)

export const api = {
  /** A page of message summaries, optionally for one mailbox, optionally a search. */
  messages({ query, mailbox, start = 0, limit = 50, signal }) {
    const params = { start, limit, mailbox };
    if (query) return request("GET", "api/v2/search", { params: { ...params, query }, signal });
    return request("GET", "api/v2/messages", { params, signal, early: true });
  },
  message: (id, signal) => request("GET", `api/v2/message/${enc(id)}`, { signal }),
  headers: (id) => request("GET", `api/v1/message/${enc(id)}/headers`),
  raw: (id) => request("GET", `api/v1/message/${enc(id)}/raw`, { as: "text" }),
  envelope: (id) => request("GET", `api/v2/message/${enc(id)}/envelope`),
  mailboxes: () => request("GET", "api/v2/mailboxes"),
  tags: () => request("GET", "api/v1/tags"),
  /** The server's settings (GET /api/v2/webui), one request for the page; a failure is not kept. */
  webui() {
    if (!webuiOnce) {
      webuiOnce = request("GET", "api/v2/webui");
      webuiOnce.catch(() => {
        webuiOnce = null;
      });
    }
    return webuiOnce;
  },
  setRead: (ids, read) => request("PUT", "api/v1/messages", { body: { IDs: ids, Read: read }, as: "none" }),
  markAllRead: () => request("PUT", "api/v1/messages", { body: { Read: true }, as: "none" }),
  markMailboxRead: (name) => request("PUT", `api/v2/mailbox/${enc(name)}/read`, { body: { Read: true }, as: "none" }),
  remove: (ids) => request("DELETE", "api/v1/messages", { body: { IDs: ids }, as: "none" }),
  removeAll: () => request("DELETE", "api/v1/messages", { as: "none" }),
  removeMailbox: (name) => request("DELETE", `api/v2/mailbox/${enc(name)}`, { as: "none" }),
  setTags: (ids, tags) => request("PUT", "api/v1/tags", { body: { IDs: ids, Tags: tags }, as: "none" }),
  thread: (threadId) => request("GET", `api/v2/thread/${enc(threadId)}`),
  /** A page of conversations, newest activity first (optionally of one mailbox). */
  threads: ({ mailbox, start = 0, limit = 50, signal } = {}) =>
    request("GET", "api/v2/threads", { params: { start, limit, mailbox }, signal }),
  /** Whether the server has the threads API (postroom's threads issue); false on 404. */
  async hasThreads() {
    try {
      await request("GET", "api/v2/threads", { params: { limit: 1 } });
      return true;
    } catch {
      return false;
    }
  },
  partUrl: (id, partId) => url(`api/v1/message/${enc(id)}/part/${enc(partId)}`),
  thumbUrl: (id, partId) => url(`api/v1/message/${enc(id)}/part/${enc(partId)}/thumb`),
  rawUrl: (id) => url(`api/v1/message/${enc(id)}/raw`),
  eventsUrl() {
    const u = new URL("api/v2/events", document.baseURI);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    return u.toString();
  },
};
