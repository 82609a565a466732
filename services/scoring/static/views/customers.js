// Customers' MFA: search by name, each customer's admins with and without MFA, paged by @odata.nextLink.

import { read } from "../api.js";
import { badge, fill, h, table, time } from "../dom.js";

export async function render(ctx) {
  const search = h("input", { id: "customer-search", name: "search", type: "search", value: ctx.query.get("search") || "",
                              spellcheck: "false" });
  const form = h("form", { class: "filters", role: "search", "aria-label": "Search customers", onsubmit: (event) => {
    event.preventDefault();
    const term = search.value.trim();
    ctx.navigate(`#/customers${term ? `?${new URLSearchParams({ search: term })}` : ""}`);
  } },
    h("div", { class: "field" }, h("label", { for: "customer-search" }, "Customer name contains"), search),
    h("button", { type: "submit" }, "Search"));
  const list = h("section", { "aria-label": "Customers" });
  fill(ctx.main, h("h1", { tabindex: "-1" }, "Customers' MFA"), form, list);

  const first = new URLSearchParams({ top: "50" });
  if (ctx.query.get("search")) first.set("search", ctx.query.get("search"));
  const pages = [`/customers/mfa?${first}`];

  async function refresh() {
    const answer = await read(pages[pages.length - 1]);
    const rows = (answer.value || []).map((c) => h("tr", { "data-customer": c.customerTenantId },
      h("th", { scope: "row" }, c.customerName, h("div", { class: "muted" }, h("small", {}, c.customerTenantId))),
      h("td", { class: "num" }, String(c.admins)),
      h("td", { class: "num" }, String(c.adminsWithMfa)),
      h("td", { class: "num" }, String(c.adminsWithoutMfa)),
      h("td", { class: "num" }, String(c.nonAdminsWithMfa)),
      h("td", { class: "num" }, String(c.totalUsers)),
      h("td", {}, c.compliant ? badge("All admins have MFA", "ok") : badge("Admins without MFA", "bad")),
      h("td", {}, time(c.observedDateTime))));
    const next = answer["@odata.nextLink"];
    const buttons = [];
    if (pages.length > 1) buttons.push(h("button", { type: "button", class: "secondary", onclick: () => { pages.pop(); refresh().catch(ctx.showError); } }, "Previous page"));
    if (next) buttons.push(h("button", { type: "button", class: "secondary", onclick: () => { pages.push(next); refresh().catch(ctx.showError); } }, "Next page"));
    fill(list,
      h("p", { class: "muted" }, `${answer["@odata.count"] ?? rows.length} customer(s) match.`),
      table("Customers and their admins' MFA", ["Customer", "Admins", "Admins with MFA", "Admins without MFA",
        "Other users with MFA", "Users", "Status", "Observed"], rows,
      { empty: "No customer matches (or no customer-MFA report was sent yet)." }),
      buttons.length ? h("nav", { class: "pager", "aria-label": "Pages of customers" }, buttons) : null);
  }

  await refresh();
  return { kinds: ["customer-mfa"], refresh };
}
