// Overview: the score (two decimals) and the projected score, then the requirements as Partner Center
// shows them, then the preview requirements with the dates they become active.

import { read } from "../api.js";
import { badge, externalLink, fill, h, table, time } from "../dom.js";

const STATUS = { compliant: ["Compliant", "ok"], noncompliant: ["Not compliant", "bad"] };

function requirementRow(requirement, preview) {
  const [statusText, tone] = STATUS[requirement.complianceStatus] || [requirement.complianceStatus, "neutral"];
  const name = requirement.displayName || requirement.requirementType;
  const row = h("tr", { "data-requirement": requirement.requirementType },
    h("td", {}, badge(requirement.kind === "mandatory" ? "Mandatory" : "Recommended",
                      requirement.kind === "mandatory" ? "info" : "neutral")),
    h("th", { scope: "row" }, h("div", { class: "requirement-name" }, name),
      requirement.description ? h("p", { class: "requirement-description" }, requirement.description) : null),
    h("td", { class: "status" }, badge(statusText, tone)),
    h("td", { class: "insight" }, requirement.insightSummary || h("span", { class: "muted" }, "–")),
    h("td", { class: "num score" }, `${requirement.score} of ${requirement.maxScore}`),
    preview ? h("td", {}, time(requirement.effectiveDateTime, { withTime: false })) : null,
    h("td", {}, h("div", { class: "actions" },
      externalLink(requirement.helpUrl, "How to fix", `How to fix: ${name}`),
      externalLink(requirement.actionUrl, "Take action", `Take action: ${name}`))));
  return row;
}

export async function render(ctx) {
  const scores = h("section", { class: "cards", "aria-label": "Security score", id: "score-cards" });
  const active = h("section", { "aria-labelledby": "requirements-title" });
  const preview = h("section", { "aria-labelledby": "preview-title" });
  fill(ctx.main, h("h1", { tabindex: "-1" }, "Partner Center security score"), scores,
    h("h2", { id: "requirements-title" }, "Requirements"), active,
    h("h2", { id: "preview-title" }, "Coming requirements (preview)"), preview);

  async function refresh() {
    const [score, requirements] = await Promise.all([read("/security-score"), read("/security-score/requirements")]);
    fill(scores,
      h("div", { class: "card" }, h("h2", {}, "Current score"),
        h("div", { class: "big", id: "current-score" }, score.currentScore.toFixed(2), h("small", {}, " / 100")),
        h("small", {}, "Updated ", time(score.updatedDateTime))),
      h("div", { class: "card" }, h("h2", {}, "Projected score"),
        h("div", { class: "big", id: "projected-score" }, score.projectedScore.toFixed(2), h("small", {}, " / 100")),
        h("small", {}, "Once the preview requirements count")));
    const items = requirements.value || [];
    const headers = ["Type", "Requirement", "Status", "Insights", "Score"];
    fill(active, table("Requirements that count toward the score", [...headers, "Links"],
      items.filter((r) => r.state !== "preview").map((r) => requirementRow(r, false)),
      { empty: "No active requirement.", className: "requirements" }));
    fill(preview, table("Requirements that will count from their activation date", [...headers, "Active from", "Links"],
      items.filter((r) => r.state === "preview").map((r) => requirementRow(r, true)),
      { empty: "No preview requirement: nothing new is coming.", className: "requirements" }));
  }

  await refresh();
  return { kinds: ["score"], refresh };
}
