// Building the page from data without ever parsing API text as HTML: every text goes in as a text node.

/** h("a", {href, class: "x", onclick}, "text", child, [more]) -> element. Attributes starting with "on" are listeners. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An SVG element (the chart), attributes as given. */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

/**
 * Replace a region's content, keeping the keyboard where it was: the element that had focus is found
 * again in the new content by its data-key (a live refresh must not throw the focus to the top).
 */
export function fill(region, ...children) {
  const focused = region.contains(document.activeElement) ? document.activeElement?.dataset?.key : undefined;
  region.replaceChildren();
  append(region, children);
  if (!focused) return;
  const again = region.querySelector(`[data-key="${CSS.escape(focused)}"]`);
  again?.focus();
  // A table's scrolling box is focusable only once laid out and found overflowing: it takes the focus then.
  if (again && document.activeElement !== again) again.dataset.focusWhenReady = "true";
}

/**
 * A table wider than its box scrolls inside it (a narrow window), and the keyboard must be able to scroll
 * it (WCAG 2.1.1): while, and only while, it overflows, the box is a focusable region named by the
 * table's caption. (Always focusable, it would be one more Tab stop for nothing on a wide screen.)
 */
const overflowing = new ResizeObserver((entries) => {
  for (const { target } of entries) {
    if (target.scrollWidth > target.clientWidth) {
      target.setAttribute("tabindex", "0");
      target.setAttribute("role", "region");
      target.setAttribute("aria-labelledby", target.dataset.caption);
      if (target.dataset.focusWhenReady) target.focus();
    } else {
      for (const name of ["tabindex", "role", "aria-labelledby"]) target.removeAttribute(name);
    }
    delete target.dataset.focusWhenReady;
  }
});
let captions = 0;

/** A table with a caption and header cells; rows are arrays of cells (a cell: text, a node, or a <td>). */
export function table(caption, headers, rows, { empty = "Nothing to show.", className = "" } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  const captionId = `caption-${++captions}`;
  const box = h("div", { class: "table-wrap", "data-caption": captionId, "data-key": `table:${className || caption}` },
    h("table", { class: className },
      h("caption", { id: captionId }, caption),
      h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, rows.map((row) => row instanceof Node ? row
        : h("tr", {}, row.map((cell) => cell instanceof Node && cell.tagName === "TD" ? cell : h("td", {}, cell)))))));
  overflowing.observe(box);
  return box;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

/** A <time> for an ISO 8601 instant, or a dash. */
export function time(iso, { withTime = true } = {}) {
  if (!iso) return h("span", { class: "muted" }, "–");
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return String(iso);
  return h("time", { datetime: iso, title: iso }, (withTime ? dateTime : dateOnly).format(moment));
}

/** Hours as "2 h 05 min" (or "45 min"); negative hours as they are, the caller words them. */
export function duration(hours) {
  if (hours === null || hours === undefined) return "–";
  const minutes = Math.round(Math.abs(hours) * 60);
  const whole = Math.floor(minutes / 60);
  const rest = String(minutes % 60).padStart(2, "0");
  return whole ? `${whole} h ${rest} min` : `${minutes} min`;
}

/** A coloured word with its meaning in the text, never the colour alone. */
export function badge(text, tone = "neutral") {
  return h("span", { class: `badge ${tone}` }, text);
}

export function link(href, text, attributes = {}) {
  return h("a", { href, ...attributes }, text);
}

/** A link leaving the dashboard (Partner Center, Microsoft Learn): new tab, no referrer; only http(s). */
export function externalLink(url, text, label) {
  if (!url || !/^https?:\/\//i.test(url)) return null;
  return h("a", { href: url, target: "_blank", rel: "noopener noreferrer", "aria-label": label }, text,
    h("span", { "aria-hidden": "true" }, " ↗"));
}
