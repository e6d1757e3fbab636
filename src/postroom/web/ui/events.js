// Live events over the WebSocket at /api/events, reconnecting with capped exponential
// backoff. Each frame is {"Type": "new"|"update"|"delete"|"truncate"|"prune"|"stats", "Data": ...}.

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;

export class LiveEvents {
  /**
   * @param {string} url ws:// or wss:// URL
   * @param {(type: string, data: any) => void} onEvent
   * @param {(state: "connecting"|"open"|"closed") => void} onState
   */
  constructor(url, onEvent, onState) {
    this.url = url;
    this.onEvent = onEvent;
    this.onState = onState;
    this.delay = BACKOFF_MIN_MS;
    this.socket = null;
    this.timer = 0;
    this.stopped = false;
    this.everOpened = false;
  }

  start() {
    this.stopped = false;
    this.connect();
    // Reconnect at once when the tab comes back or the network returns.
    window.addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.reconnectNow();
    });
  }

  reconnectNow() {
    if (this.stopped || (this.socket && this.socket.readyState <= WebSocket.OPEN)) return;
    clearTimeout(this.timer);
    this.delay = BACKOFF_MIN_MS;
    this.connect();
  }

  connect() {
    this.onState("connecting");
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch {
      this.schedule();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      const wasReconnect = this.everOpened;
      this.everOpened = true;
      this.delay = BACKOFF_MIN_MS;
      this.onState("open");
      // Anything may have happened while we were away: let the app resynchronise.
      if (wasReconnect) this.onEvent("reconnect", null);
    });
    socket.addEventListener("message", (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (frame && typeof frame.Type === "string") this.onEvent(frame.Type, frame.Data);
    });
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.onState("closed");
      this.schedule();
    });
  }

  schedule() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    // Full jitter keeps many tabs from reconnecting in lockstep after a restart.
    const wait = Math.round(this.delay / 2 + Math.random() * (this.delay / 2));
    this.timer = setTimeout(() => this.connect(), wait);
    this.delay = Math.min(this.delay * 2, BACKOFF_MAX_MS);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close();
  }
}
