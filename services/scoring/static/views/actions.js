// The write controls on alerts and deliveries. None is built for a key without the permission (a
// securityReader sees no write control at all); the write API checks the permission again anyway.

import { session, write } from "../api.js";
import { h } from "../dom.js";

export const canUpdateAlerts = () => session.can("update-alerts");
export const canManage = () => session.can("manage");

function title(alert) {
  return alert.title || alert.displayName || alert.id;
}

/** Run a write from a button: disabled meanwhile, the outcome announced, the view refreshed. */
export async function act(ctx, button, work, success) {
  button.disabled = true;
  try {
    await work();
    ctx.announce(success);
    await ctx.refresh();
  } catch (error) {
    ctx.showError(error);
  } finally {
    button.disabled = false;
  }
}

export function acknowledge(ctx, alert) {
  const button = h("button", { type: "button", class: "secondary", "data-key": `ack:${alert.id}`,
                               "aria-label": `Acknowledge ${title(alert)}`, "data-action": "acknowledge",
                               onclick: () => act(ctx, button,
                                 () => write("PATCH", `/alerts/${encodeURIComponent(alert.id)}`, { status: "investigating" }),
                                 `Acknowledged “${title(alert)}”: its response clock stopped.`) },
    "Acknowledge");
  return button;
}

let dialog = null;

/** The one dialog asking why an alert is resolved (native <dialog>: focus kept inside, Escape closes). */
function resolveDialog() {
  if (dialog) return dialog;
  const reason = h("select", { id: "resolve-reason", name: "reason" },
    h("option", { value: "legitimate" }, "Legitimate activity"),
    h("option", { value: "fraud" }, "Fraud"),
    h("option", { value: "ignore" }, "Ignore"));
  dialog = h("dialog", { id: "resolve-dialog", "aria-labelledby": "resolve-title" },
    h("form", { method: "dialog" },
      h("h2", { id: "resolve-title" }, "Resolve alert"),
      h("p", { id: "resolve-alert", class: "muted" }),
      h("label", { for: "resolve-reason" }, "Reason"), reason,
      h("div", { class: "row" },
        h("button", { type: "submit", value: "resolve", id: "resolve-confirm" }, "Resolve"),
        h("button", { type: "submit", value: "cancel", class: "secondary" }, "Cancel"))));
  document.body.append(dialog);
  return dialog;
}

export function resolve(ctx, alert) {
  const button = h("button", { type: "button", class: "secondary", "data-key": `resolve:${alert.id}`,
                               "aria-label": `Resolve ${title(alert)}`, "data-action": "resolve",
                               onclick: () => {
                                 const box = resolveDialog();
                                 box.querySelector("#resolve-alert").textContent = title(alert);
                                 box.returnValue = "";
                                 box.addEventListener("close", () => {
                                   button.focus();
                                   if (box.returnValue !== "resolve") return;
                                   const resolvedReason = box.querySelector("#resolve-reason").value;
                                   act(ctx, button, () => write("PATCH", `/alerts/${encodeURIComponent(alert.id)}`,
                                     { status: "resolved", resolvedReason }), `Resolved “${title(alert)}” (${resolvedReason}).`);
                                 }, { once: true });
                                 box.showModal();
                               } },
    "Resolve");
  return button;
}

/** Acknowledge (while active) and Resolve (until resolved), or nothing for a reader. */
export function alertActions(ctx, alert) {
  if (!canUpdateAlerts()) return null;
  const buttons = [];
  if (alert.status === "active") buttons.push(acknowledge(ctx, alert));
  if (alert.status !== "resolved") buttons.push(resolve(ctx, alert));
  return buttons.length ? h("div", { class: "actions" }, buttons) : null;
}

export function redeliver(ctx, delivery) {
  if (!canManage() || delivery.state !== "dead") return null;
  const button = h("button", { type: "button", class: "secondary", "data-key": `redeliver:${delivery.id}`,
                               "aria-label": `Redeliver the ${delivery.kind} to ${delivery.recipient || delivery.channel}`,
                               "data-action": "redeliver",
                               onclick: () => act(ctx, button,
                                 () => write("POST", `/deliveries/${encodeURIComponent(delivery.id)}/redeliver`),
                                 "Redelivery requested: the notifier queues it again.") },
    "Redeliver");
  return button;
}
