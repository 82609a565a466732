// One alert: its details, Partner Center sync state, the actions (acknowledge, resolve, assign, note),
// its timeline (the activity log) and its deliveries.

import { read, write } from "../api.js";
import { badge, duration, fill, h, table, time } from "../dom.js";
import { act, alertActions, canManage, canUpdateAlerts, redeliver } from "./actions.js";
import { timeLeft, timeLeftText } from "./response.js";

const SYNC_TONES = { synced: "ok", pending: "warn", failed: "bad" };

function details(alert) {
  const left = timeLeft(alert);
  const pairs = [
    ["Alert id", h("code", {}, alert.id)],
    ["Severity", alert.severity || "–"],
    ["Status", h("span", { id: "alert-status" }, alert.status)],
    ["Customer", alert.customerTenantId || "–"],
    ["Detected", time(alert.detectedDateTime)],
    ["Clock started", time(alert.clockStartedDateTime)],
    ["Response", alert.respondedDateTime
      ? h("span", { id: "alert-response" }, badge("Responded", "ok"), " ", time(alert.respondedDateTime),
        alert.respondedBy ? ` by ${alert.respondedBy}` : "", ` · after ${duration(alert.latencyHours)}`)
      : h("span", { id: "alert-response" }, left === null ? "closed unanswered" : `not yet: ${timeLeftText(left)}`)],
    ["Counts toward the average", alert.countsTowardResponseTime ? "yes" : "no (a test alert, or closed unanswered)"],
    ["Assigned to", h("span", { id: "alert-assignee" }, alert.assignedTo || "nobody")],
    ["Notes", String(alert.notesCount ?? 0)],
  ];
  if (alert.description) pairs.splice(1, 0, ["Description", alert.description]);
  return h("dl", { class: "details" }, pairs.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

function sync(state) {
  if (!state) return h("p", { class: "muted", id: "sync-state" }, "Not from Partner Center: nothing to keep in step.");
  return h("dl", { class: "details", id: "sync-state" },
    h("dt", {}, "State"), h("dd", {}, badge(state.state, SYNC_TONES[state.state] || "neutral")),
    h("dt", {}, "Last in step"), h("dd", {}, time(state.lastSyncedDateTime)),
    state.pendingStatus ? [h("dt", {}, "Waiting to be written"), h("dd", {}, state.pendingStatus)] : null,
    h("dt", {}, "Write-back attempts"), h("dd", {}, String(state.attempts ?? 0)),
    state.lastError ? [h("dt", {}, "Last error"), h("dd", { class: "bad-text" }, state.lastError)] : null);
}

/** A timeline entry's details in a line of text ("status: active → investigating"). */
function entryText(details) {
  if (!details || typeof details !== "object") return "";
  if (Array.isArray(details.changes)) {
    return details.changes.map((c) => `${c.field ?? c.name ?? "change"}: ${c.oldValue ?? c.from ?? "–"} → ${c.newValue ?? c.to ?? "–"}`).join("; ");
  }
  return Object.entries(details).filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
}

function timeline(entries) {
  if (!entries.length) return h("p", { class: "empty" }, "Nothing recorded yet.");
  return h("ol", { class: "timeline", id: "timeline" }, entries.map((entry) => h("li", {},
    h("div", {}, h("span", { class: "entry-type" }, entry.type), " · ", time(entry.occurredDateTime),
      entry.actor ? ` · ${entry.actor}` : ""),
    h("div", { class: "entry-detail" }, entryText(entry.details)))));
}

function deliveryRows(ctx, deliveries) {
  return deliveries.map((d) => [d.kind, d.channel, d.recipient || "–",
    badge(d.state, { delivered: "ok", dead: "bad", pending: "warn" }[d.state] || "neutral"),
    String(d.attempts), d.lastError || "–", time(d.lastAttemptDateTime), ...(canManage() ? [redeliver(ctx, d) || ""] : [])]);
}

function triageForms(ctx, alert) {
  if (!canUpdateAlerts()) return null;
  const path = `/alerts/${encodeURIComponent(alert.id)}`;
  const email = h("input", { id: "assignee", name: "assignee", type: "email", required: true, autocomplete: "email",
                             value: alert.assignedTo || "" });
  const assign = h("form", { class: "inline", "aria-label": "Assign the alert", onsubmit: (event) => {
    event.preventDefault();
    act(ctx, assignButton, () => write("PUT", `${path}/assignee`, { assignee: email.value.trim() }),
      `Assigned to ${email.value.trim()}.`);
  } },
    h("div", { class: "field" }, h("label", { for: "assignee" }, "Assign to (e-mail)"), email));
  const assignButton = h("button", { type: "submit" }, "Assign");
  assign.append(assignButton);
  if (alert.assignedTo) {
    const unassign = h("button", { type: "button", class: "secondary", onclick: () =>
      act(ctx, unassign, () => write("DELETE", `${path}/assignee`), "Unassigned.") }, "Unassign");
    assign.append(unassign);
  }
  const text = h("textarea", { id: "note-text", name: "text", required: true, maxlength: "4000" });
  const noteButton = h("button", { type: "submit" }, "Add note");
  const note = h("form", { "aria-label": "Add a note", onsubmit: (event) => {
    event.preventDefault();
    act(ctx, noteButton, async () => { await write("POST", `${path}/notes`, { text: text.value }); text.value = ""; },
      "Note added.");
  } },
    h("label", { for: "note-text" }, "Note"), text, h("div", { class: "row" }, noteButton));
  return h("section", { class: "panel", "aria-labelledby": "triage-heading" },
    h("h2", { id: "triage-heading" }, "Triage"), alertActions(ctx, alert), assign, note);
}

export async function render(ctx) {
  const id = ctx.params.alertId;
  const heading = h("h1", { tabindex: "-1" }, `Alert ${id}`);
  const top = h("div", { class: "grid-2" });
  const triage = h("div");
  const log = h("section", { "aria-labelledby": "timeline-heading" });
  const sent = h("section", { "aria-labelledby": "deliveries-heading" });
  fill(ctx.main, h("p", {}, h("a", { href: "#/alerts" }, "← All alerts")), heading, top, triage,
    h("h2", { id: "timeline-heading" }, "Timeline"), log,
    h("h2", { id: "deliveries-heading" }, "Deliveries"), sent);

  const path = `/alerts/${encodeURIComponent(id)}`;
  async function refresh() {
    const [alert, entries, deliveries] = await Promise.all([
      read(path), read(`${path}/timeline?top=100`).catch(() => ({ value: [] })),
      read(`/deliveries?alertId=${encodeURIComponent(id)}`)]);
    heading.textContent = alert.displayName || `Alert ${id}`;
    fill(top,
      h("section", { class: "panel", "aria-labelledby": "details-heading" }, h("h2", { id: "details-heading" }, "Details"), details(alert)),
      h("section", { class: "panel", "aria-labelledby": "sync-heading" }, h("h2", { id: "sync-heading" }, "Partner Center sync"),
        sync(alert.partnerCenterSync)));
    // The triage forms are rebuilt only when what they show changed, so typing is never lost to a refresh.
    const shape = `${alert.status}|${alert.assignedTo}`;
    if (triage.dataset.shape !== shape) {
      triage.dataset.shape = shape;
      fill(triage, triageForms(ctx, alert));
    }
    fill(log, timeline(entries.value || []));
    fill(sent, table("Notifications about this alert", ["Kind", "Channel", "Recipient", "State", "Attempts", "Last error",
      "Last attempt", ...(canManage() ? ["Actions"] : [])], deliveryRows(ctx, deliveries.value || []), { empty: "No notification about this alert." }));
  }

  try {
    await refresh();
  } catch (error) {
    if (error.status !== 404) throw error;
    fill(ctx.main, h("h1", { tabindex: "-1" }, "Alert not found"), h("p", {}, error.message),
      h("p", {}, h("a", { href: "#/alerts" }, "All alerts")));
    return { kinds: [], refresh: async () => {} };
  }
  return { kinds: ["alert", "delivery", "clock"], refresh };
}
