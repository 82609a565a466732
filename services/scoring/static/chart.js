// The 30-day response-time trend as an SVG line chart, with the 24-hour limit and the 1-hour goal as
// lines, and the same figures as a table for screen readers and anyone who prefers numbers.

import { h, svg, table } from "./dom.js";

const WIDTH = 640;
const HEIGHT = 240;
const PAD = { left: 44, right: 16, top: 14, bottom: 30 };

/** points: [{date, averageResponseTimeInHours|null, respondedCount}], oldest first. */
export function trendChart(points, { limitHours = 24, goalHours = 1 } = {}) {
  const values = points.map((p) => p.averageResponseTimeInHours).filter((v) => v !== null && v !== undefined);
  const top = Math.max(limitHours * 1.15, ...values.map((v) => v * 1.1));
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (points.length <= 1 ? plotWidth : (i * plotWidth) / (points.length - 1));
  const y = (hours) => PAD.top + plotHeight - (hours / top) * plotHeight;

  // A day with no answered alert in its window has no average: the line breaks there.
  let path = "";
  let drawing = false;
  points.forEach((point, i) => {
    const value = point.averageResponseTimeInHours;
    if (value === null || value === undefined) { drawing = false; return; }
    path += `${drawing ? "L" : "M"}${x(i).toFixed(1)},${y(value).toFixed(1)} `;
    drawing = true;
  });

  // Axis labels closer than a line of text to the one below are left out (0 h under the 1-hour goal).
  const ticks = [0, goalHours, limitHours / 2, limitHours].filter((v, i, all) => all.indexOf(v) === i)
    .filter((v) => v !== 0 || y(0) - y(goalHours) >= 14);
  const first = points[0]?.date ?? "";
  const last = points[points.length - 1]?.date ?? "";
  const latest = [...points].reverse().find((p) => p.averageResponseTimeInHours != null);
  const summary = latest
    ? `Average response time per day from ${first} to ${last}; latest ${latest.averageResponseTimeInHours.toFixed(2)} hours ` +
      `against a ${limitHours}-hour limit and a ${goalHours}-hour goal.`
    : `No alert was answered between ${first} and ${last}.`;

  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-labelledby": "trend-title trend-desc",
                             class: "chart", preserveAspectRatio: "xMidYMid meet" },
    svg("title", { id: "trend-title" }, "Response time, 30-day trend"),
    svg("desc", { id: "trend-desc" }, summary),
    ticks.map((hours) => svg("g", {},
      svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(hours), y2: y(hours), class: "grid" }),
      svg("text", { x: PAD.left - 6, y: y(hours) + 4, "text-anchor": "end", class: "axis" }, `${hours} h`))),
    svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(limitHours), y2: y(limitHours), class: "limit" }),
    svg("text", { x: WIDTH - PAD.right, y: y(limitHours) - 5, "text-anchor": "end", class: "limit-label" },
      `limit ${limitHours} h`),
    svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(goalHours), y2: y(goalHours), class: "goal" }),
    svg("text", { x: WIDTH - PAD.right, y: y(goalHours) - 5, "text-anchor": "end", class: "goal-label" },
      `goal ${goalHours} h`),
    path ? svg("path", { d: path.trim(), class: "line" }) : null,
    points.map((point, i) => point.averageResponseTimeInHours == null ? null
      : svg("circle", { cx: x(i), cy: y(point.averageResponseTimeInHours), r: 2.5, class: "dot" })),
    svg("text", { x: PAD.left, y: HEIGHT - 8, class: "axis" }, first),
    svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 8, "text-anchor": "end", class: "axis" }, last));

  const rows = points.map((p) => [p.date,
    p.averageResponseTimeInHours == null ? "–" : `${p.averageResponseTimeInHours.toFixed(2)} h`, String(p.respondedCount ?? 0)]);
  return h("figure", { class: "trend" }, chart,
    h("figcaption", { class: "muted" }, summary),
    h("details", {}, h("summary", {}, "The trend as a table"),
      table("Rolling 30-day average by day", ["Day", "Average response time", "Alerts answered"], rows)));
}
