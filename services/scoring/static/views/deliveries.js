// Deliveries: the dead letters by default (notifications that failed every attempt), each with
// Redeliver for a key that may manage; any other state by the filter.

import { read } from "../api.js";
import { badge, fill, h, link, table, time } from "../dom.js";
import { canManage, redeliver } from "./actions.js";

const STATES = ["dead", "pending", "delivered", "skipped", "cancelled"];

export async function render(ctx) {
  const chosen = STATES.includes(ctx.query.get("state")) ? ctx.query.get("state") : "dead";
  const state = h("select", { id: "delivery-state", name: "state" },
    STATES.map((s) => h("option", { value: s, selected: s === chosen }, s)));
  const form = h("form", { class: "filters", "aria-label": "Choose deliveries", onsubmit: (event) => {
    event.preventDefault();
    ctx.navigate(`#/deliveries?state=${state.value}`);
  } },
    h("div", { class: "field" }, h("label", { for: "delivery-state" }, "State"), state),
    h("button", { type: "submit" }, "Show"));
  const list = h("section", { "aria-label": "Deliveries" });
  fill(ctx.main, h("h1", { tabindex: "-1" }, chosen === "dead" ? "Dead deliveries" : "Deliveries"), form, list);

  async function refresh() {
    const answer = await read(`/deliveries?state=${chosen}&top=100`);
    const manage = canManage();
    const rows = (answer.value || []).map((d) => h("tr", { "data-delivery": d.id },
      h("td", {}, d.alertId ? link(`#/alerts/${encodeURIComponent(d.alertId)}`, d.alertId) : d.subject),
      h("td", {}, d.kind), h("td", {}, d.channel), h("td", {}, d.recipient || "–"),
      h("td", {}, badge(d.state, d.state === "dead" ? "bad" : d.state === "delivered" ? "ok" : "neutral")),
      h("td", { class: "num" }, String(d.attempts)),
      h("td", {}, d.lastError || (d.lastStatusCode ? `HTTP ${d.lastStatusCode}` : "–")),
      h("td", {}, time(d.deadLetteredDateTime || d.lastAttemptDateTime)),
      manage ? h("td", {}, redeliver(ctx, d) || "") : null));
    const headers = ["Alert or subject", "Kind", "Channel", "Recipient", "State", "Attempts", "Last error", "When"];
    fill(list, table(`Deliveries: ${chosen}`, manage ? [...headers, "Actions"] : headers, rows,
      { empty: chosen === "dead" ? "No dead delivery: every notification got through." : "None." }));
  }

  await refresh();
  return { kinds: ["delivery"], refresh };
}
