// Response time: the 30-day average against the 24-hour limit and the 1-hour goal, its trend, and the
// open alerts by time left before 24 hours (the ones running out highlighted), each with its actions.

import { read, readIfThere } from "../api.js";
import { trendChart } from "../chart.js";
import { badge, duration, fill, h, link, table, time } from "../dom.js";
import { alertActions, canUpdateAlerts } from "./actions.js";

export const LIMIT_HOURS = 24;
export const GOAL_HOURS = 1;
const URGENT_HOURS = 4; // less than this left: highlighted

/** Hours left before the alert's open age reaches 24 h (negative once past), from the API or its age. */
export function timeLeft(alert) {
  if (alert.timeLeftHours !== undefined) return alert.timeLeftHours;
  return alert.openAgeHours == null ? null : LIMIT_HOURS - alert.openAgeHours;
}

export function timeLeftText(hours) {
  if (hours === null || hours === undefined) return "–";
  return hours >= 0 ? `${duration(hours)} left` : `overdue by ${duration(hours)}`;
}

/** The open alerts, least time left first: the API's order when it has it, else sorted here. */
async function openAlerts() {
  try {
    return (await read("/alerts?orderby=timeLeft&top=100")).value || [];
  } catch (error) {
    if (error.status !== 422) throw error; // an older read API: no orderby=timeLeft
  }
  const answered = (await read("/alerts?responded=false&top=500")).value || [];
  return answered.filter((a) => timeLeft(a) !== null).sort((a, b) => timeLeft(a) - timeLeft(b));
}

function average(figures) {
  const hours = figures.averageResponseTimeInHours;
  let verdict;
  if (!figures.compliant) verdict = badge("Over the 24 h limit", "bad");
  else if (figures.atRisk) verdict = badge("At risk", "warn");
  else if (hours != null && hours <= GOAL_HOURS) verdict = badge("Within the 1 h goal", "ok");
  else verdict = badge("Within the 24 h limit", "ok");
  return [
    h("div", { class: "card" }, h("h2", {}, "Average, last 30 days"),
      h("div", { class: "big", id: "average-response" }, hours == null ? "–" : `${hours.toFixed(2)} h`),
      h("div", {}, verdict),
      h("small", {}, `limit ${LIMIT_HOURS} h · goal ${GOAL_HOURS} h · ${figures.respondedCount} answered`)),
    h("div", { class: "card" }, h("h2", {}, "If the open alerts were answered now"),
      h("div", { class: "big" }, figures.projectedAverageResponseTimeInHours == null ? "–"
        : `${figures.projectedAverageResponseTimeInHours.toFixed(2)} h`),
      h("small", {}, "projected average")),
    h("div", { class: "card" }, h("h2", {}, "Open alerts"),
      h("div", { class: "big", id: "open-count" }, String(figures.openCount)),
      h("small", {}, figures.oldestOpenAgeHours == null ? "none waiting" : `oldest open for ${duration(figures.oldestOpenAgeHours)}`)),
  ];
}

export function openAlertRows(ctx, alerts) {
  return alerts.map((alert) => {
    const left = timeLeft(alert);
    const urgent = left !== null && left < URGENT_HOURS;
    return h("tr", { class: urgent ? "urgent" : "", "data-alert": alert.id, "data-urgent": urgent ? "true" : null },
      h("th", { scope: "row" }, link(`#/alerts/${encodeURIComponent(alert.id)}`, alert.displayName || alert.id)),
      h("td", {}, alert.severity || "–"),
      h("td", {}, alert.customerTenantId || "–"),
      h("td", { class: "time-left" }, urgent ? h("strong", { class: "bad-text" }, timeLeftText(left)) : timeLeftText(left)),
      h("td", {}, time(alert.clockStartedDateTime)),
      canUpdateAlerts() ? h("td", {}, alertActions(ctx, alert)) : null);
  });
}

export async function render(ctx) {
  const cards = h("section", { class: "cards", "aria-label": "Response time figures" });
  const trend = h("section", { class: "panel", "aria-labelledby": "trend-heading" });
  const open = h("section", { "aria-labelledby": "open-heading" });
  fill(ctx.main, h("h1", { tabindex: "-1" }, "Response time"), cards,
    h("h2", { id: "trend-heading" }, "30-day trend"), trend,
    h("h2", { id: "open-heading" }, "Open alerts by time left before 24 hours"), open);

  async function refresh() {
    const [figures, history, alerts] = await Promise.all([
      read("/response-time"), readIfThere("/response-time/trend?days=30"), openAlerts()]);
    fill(cards, average(figures));
    fill(trend, history
      ? trendChart(history.value || [], { limitHours: history.limitHours ?? LIMIT_HOURS, goalHours: history.goalHours ?? GOAL_HOURS })
      : h("p", { class: "empty" }, "The trend is not available from this read API yet."));
    const headers = ["Alert", "Severity", "Customer", "Time left", "Clock started"];
    fill(open, table("Open alerts, least time left first", canUpdateAlerts() ? [...headers, "Actions"] : headers,
      openAlertRows(ctx, alerts), { empty: "No open alert: nothing is waiting for a response.", className: "open-alerts" }));
  }

  await refresh();
  return { kinds: ["alert", "clock"], refresh };
}
