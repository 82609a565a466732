// Live updates: the read API's server-sent events (GET /v1/tenants/{t}/changes), read with fetch() and a
// ReadableStream because EventSource cannot send the Authorization header. Reconnects with backoff;
// while the stream is not there (an older read API), the page falls back to polling.

import { tenantPath, session } from "./api.js";

const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30000;
const POLL_MS = 30000;

/**
 * Start listening. `onChange(kinds)` gets the set of kinds changed ("score", "alert", "delivery",
 * "customer-mfa", or "*" when polling), debounced; `onState(state)` gets "connecting" | "live" |
 * "reconnecting" | "polling" | "stopped". Returns stop().
 */
export function listen({ onChange, onState, debounceMs = 250 }) {
  const controller = new AbortController();
  let pending = new Set();
  let timer = null;
  let backoff = MIN_BACKOFF_MS;

  const changed = (kind) => {
    pending.add(kind);
    clearTimeout(timer);
    timer = setTimeout(() => {
      const kinds = pending;
      pending = new Set();
      onChange(kinds);
    }, debounceMs);
  };

  const pause = (ms) => new Promise((resolve) => {
    const wait = setTimeout(resolve, ms);
    controller.signal.addEventListener("abort", () => { clearTimeout(wait); resolve(); }, { once: true });
  });

  async function run() {
    onState("connecting");
    while (!controller.signal.aborted) {
      let response = null;
      try {
        response = await fetch(tenantPath("/changes"), {
          headers: { Authorization: `Bearer ${session.key}`, Accept: "text/event-stream" },
          signal: controller.signal, cache: "no-store",
        });
      } catch {
        response = null;
      }
      if (controller.signal.aborted) break;
      if (response?.status === 404 || response?.status === 405) {
        // No stream on this read API: poll instead, now and then.
        onState("polling");
        await pause(POLL_MS);
        if (!controller.signal.aborted) changed("*");
        continue;
      }
      if (response?.ok && response.body) {
        try {
          await readEvents(response.body, controller.signal, (event, data) => {
            if (event === "ready") {
              backoff = MIN_BACKOFF_MS;
              onState("live");
              // Whatever changed while the stream was down is read again.
              changed("*");
            } else if (event === "change") {
              changed(data?.kind || "*");
            }
          });
        } catch {
          // The stream broke (server restarted, network): reconnect below.
        }
      }
      if (controller.signal.aborted) break;
      onState("reconnecting");
      await pause(backoff + Math.random() * 250);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
    onState("stopped");
  }

  run();
  return () => { controller.abort(); clearTimeout(timer); };
}

/** Parse a text/event-stream body: calls onEvent(eventName, parsedData) per event; comments are keep-alives. */
async function readEvents(body, signal, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  signal.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = text;
        else if (field === "data") data.push(text);
      }
      if (!data.length && event === "message") continue;
      let parsed = null;
      try { parsed = JSON.parse(data.join("\n")); } catch { parsed = data.join("\n"); }
      onEvent(event, parsed);
    }
  }
}
