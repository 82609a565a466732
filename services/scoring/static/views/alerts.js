// The alerts list: filters (status, severity, customer, responded) kept in the address, paging by the
// API's @odata.nextLink.

import { read } from "../api.js";
import { badge, duration, fill, h, link, table, time } from "../dom.js";
import { alertActions, canUpdateAlerts } from "./actions.js";
import { timeLeft, timeLeftText } from "./response.js";

const FILTERS = {
  status: ["Any status", "active", "investigating", "resolved"],
  severity: ["Any severity", "informational", "low", "medium", "high"],
  responded: ["Answered or not", "true", "false"],
};
const LABELS = { status: "Status", severity: "Severity", responded: "Responded" };
const TONES = { high: "bad", medium: "warn", low: "info", informational: "neutral" };

function select(name, value) {
  const [any, ...options] = FILTERS[name];
  return h("div", { class: "field" }, h("label", { for: `filter-${name}` }, LABELS[name]),
    h("select", { id: `filter-${name}`, name },
      h("option", { value: "" }, any),
      options.map((option) => h("option", { value: option, selected: option === value },
        name === "responded" ? (option === "true" ? "Answered" : "Not answered") : option))));
}

function responseCell(alert) {
  if (alert.respondedDateTime) {
    return h("span", {}, badge("Responded", "ok"), " ", h("small", {}, `after ${duration(alert.latencyHours)}`));
  }
  const left = timeLeft(alert);
  return left === null ? h("span", { class: "muted" }, "closed unanswered") : timeLeftText(left);
}

export function alertRow(ctx, alert) {
  return h("tr", { "data-alert": alert.id },
    h("th", { scope: "row" }, link(`#/alerts/${encodeURIComponent(alert.id)}`, alert.displayName || alert.id)),
    h("td", {}, badge(alert.severity || "unknown", TONES[alert.severity] || "neutral")),
    h("td", {}, alert.status),
    h("td", {}, alert.customerTenantId || "–"),
    h("td", {}, time(alert.clockStartedDateTime)),
    h("td", { class: "response" }, responseCell(alert)),
    h("td", {}, alert.assignedTo || h("span", { class: "muted" }, "nobody")),
    canUpdateAlerts() ? h("td", {}, alertActions(ctx, alert)) : null);
}

export async function render(ctx) {
  const query = ctx.query;
  const customer = h("input", { id: "filter-customer", name: "customerTenantId", value: query.get("customerTenantId") || "",
                                spellcheck: "false" });
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter alerts", onsubmit: (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (String(value).trim()) chosen.set(name, String(value).trim());
    ctx.navigate(`#/alerts${chosen.size ? `?${chosen}` : ""}`);
  } },
    select("status", query.get("status")), select("severity", query.get("severity")),
    h("div", { class: "field" }, h("label", { for: "filter-customer" }, "Customer tenant id"), customer),
    select("responded", query.get("responded")),
    h("button", { type: "submit" }, "Apply filters"));
  const list = h("section", { "aria-label": "Alerts" });
  fill(ctx.main, h("h1", { tabindex: "-1" }, "Alerts"), form, list);

  const base = new URLSearchParams({ top: "25" });
  for (const name of ["status", "severity", "customerTenantId", "responded"]) {
    if (query.get(name)) base.set(name, query.get(name));
  }
  const pages = [`/alerts?${base}`]; // the pages seen so far: Previous goes back one
  let next = null;

  async function refresh() {
    const answer = await read(pages[pages.length - 1]);
    next = answer["@odata.nextLink"] || null;
    const headers = ["Alert", "Severity", "Status", "Customer", "Clock started", "Response", "Assigned to"];
    const buttons = [];
    if (pages.length > 1) {
      buttons.push(h("button", { type: "button", class: "secondary", "data-key": "previous", onclick: () => {
        pages.pop(); refresh().catch(ctx.showError);
      } }, "Previous page"));
    }
    if (next) {
      buttons.push(h("button", { type: "button", class: "secondary", "data-key": "next", onclick: () => {
        pages.push(next); refresh().catch(ctx.showError);
      } }, "Next page"));
    }
    fill(list, table(`Alerts, page ${pages.length}`, canUpdateAlerts() ? [...headers, "Actions"] : headers,
      (answer.value || []).map((alert) => alertRow(ctx, alert)), { empty: "No alert matches.", className: "alerts" }),
    buttons.length ? h("nav", { class: "pager", "aria-label": "Pages of alerts" }, buttons) : null);
  }

  await refresh();
  return { kinds: ["alert", "clock"], refresh };
}
