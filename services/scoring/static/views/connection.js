// The Graph (Partner Center) connection's state, read from the write API.

import { writeApiGet } from "../api.js";
import { badge, fill, h, time } from "../dom.js";

export async function render(ctx) {
  const panel = h("section", { class: "panel", "aria-labelledby": "connection-heading" });
  fill(ctx.main, h("h1", { tabindex: "-1" }, "Graph connection"),
    h("p", { class: "muted" }, "How this system reads Partner Center's security alerts and writes responses back."), panel);

  async function refresh() {
    let connection;
    try {
      connection = await writeApiGet("/connections/graph");
    } catch (error) {
      const said = { 404: "No connection: alerts come only through the write API (webhooks, posts).",
                     403: "Not visible to your role." }[error.status];
      fill(panel, h("h2", { id: "connection-heading" }, "State"), h("p", { id: "connection-state" }, said || error.message));
      return;
    }
    const failing = Boolean(connection.lastError);
    const state = !connection.enabled ? badge("Disabled", "neutral") : failing ? badge("Failing", "bad") : badge("Working", "ok");
    const pairs = [
      ["State", h("span", { id: "connection-state" }, state)],
      ["Directory", connection.directoryId], ["Application (client) id", connection.clientId],
      ["Credential", connection.credentialType + (connection.certificateThumbprint ? ` (${connection.certificateThumbprint})` : "")],
      ["Last poll", time(connection.lastPollDateTime)], ["Last successful poll", time(connection.lastSuccessfulPollDateTime)],
      ["Next poll", time(connection.nextPollDateTime)],
      ["Last error", failing ? h("span", { class: "bad-text" }, connection.lastError.message, " (", time(connection.lastError.dateTime), ")") : "none"],
      ["Alerts from Partner Center", String(connection.alertsSeen)], ["Read by the last poll", String(connection.lastPollAlertCount)],
      ["Responses waiting to be written back", String(connection.writeBacksPending)],
      ["Responses Partner Center refused", String(connection.writeBacksFailed)],
    ];
    fill(panel, h("h2", { id: "connection-heading" }, "State"),
      h("dl", { class: "details" }, pairs.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)])));
  }

  await refresh();
  return { kinds: ["clock"], refresh };
}
