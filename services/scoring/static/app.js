// The dashboard's entry point: sign-in, the header (who, live state, sign out), hash routing between the
// views, and live refreshes of the view on screen when the read API tells of a change.

import { ApiError, loadConfig, read, session } from "./api.js";
import { h, fill } from "./dom.js";
import { listen } from "./live.js";
import * as overview from "./views/overview.js";
import * as responseTime from "./views/response.js";
import * as alerts from "./views/alerts.js";
import * as alert from "./views/alert.js";
import * as customers from "./views/customers.js";
import * as deliveries from "./views/deliveries.js";
import * as connection from "./views/connection.js";

const $ = (id) => document.getElementById(id);
const main = $("main");
let stopListening = null;
let current = null; // { name, view: {kinds, refresh} }
let renderToken = 0;

const ROUTES = {
  "overview": overview, "response-time": responseTime, "alerts": alerts, "customers": customers,
  "deliveries": deliveries, "connection": connection,
};

function route() {
  const [path, search = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(search);
  if (parts[0] === "alerts" && parts.length > 1) {
    return { name: "alerts", view: "alert", module: alert, params: { alertId: parts.slice(1).join("/") }, query };
  }
  const name = ROUTES[parts[0]] ? parts[0] : "overview";
  return { name, view: name, module: ROUTES[name], params: {}, query };
}

/** Say something to screen readers (and show it briefly); errors are announced assertively. */
let statusTimer = null;
export function announce(text) {
  $("error").textContent = "";
  $("status").textContent = text;
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { $("status").textContent = ""; }, 6000);
}

export function showError(error) {
  $("error").textContent = error instanceof Error ? error.message : String(error);
}

function context(target) {
  return {
    main, params: target.params, query: target.query, announce, showError,
    navigate(hash) { if (location.hash === hash) renderView(); else location.hash = hash; },
    /** Refresh the view on screen now (after a write, not waiting for the live event). */
    refresh() { return refreshView(); },
  };
}

async function renderView({ focus = true } = {}) {
  if (!session.me) return;
  const target = route();
  const token = ++renderToken;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === target.name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  fill(main, h("p", { class: "muted" }, "Loading…"));
  // Busy until the view has drawn its data: assistive technology waits for it (so do the tests).
  main.dataset.view = target.view;
  main.setAttribute("aria-busy", "true");
  try {
    const view = await target.module.render(context(target));
    if (token !== renderToken) return;
    current = { name: target.name, view };
    if (focus) (main.querySelector("h1") || main).focus?.();
  } catch (error) {
    if (token !== renderToken) return;
    if (error instanceof ApiError && error.status === 401) return signOut("Your key is no longer accepted: sign in again.");
    fill(main, h("h1", {}, "Something went wrong"), h("p", {}, error.message));
    showError(error);
  } finally {
    if (token === renderToken) main.removeAttribute("aria-busy");
  }
}

/**
 * Refresh the view on screen, one refresh at a time: a change arriving meanwhile refreshes once more
 * after it, so an older answer never lands over a newer one.
 */
let refreshing = null;
let refreshAgain = false;
async function refreshView() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  const view = current?.view;
  if (!view?.refresh) return;
  refreshing = view.refresh().catch((error) => showError(error));
  try {
    await refreshing;
  } finally {
    refreshing = null;
  }
  const again = refreshAgain;
  refreshAgain = false;
  if (again && current?.view === view) await refreshView();
}

function onLiveChange(kinds) {
  const view = current?.view;
  if (view && (kinds.has("*") || (view.kinds || []).some((kind) => kinds.has(kind)))) refreshView();
}

function onLiveState(state) {
  const live = $("live");
  live.dataset.state = state;
  $("live-text").textContent = { connecting: "connecting", live: "live", reconnecting: "reconnecting",
                                 polling: "refreshing every 30 s", stopped: "offline" }[state] || state;
}

/** Show the views; `focus`: move the keyboard to the view's heading (not on a fresh page load, where
 *  the first Tab should reach the skip link). */
// Views showing time left (or a connection's next poll) are read again each minute even when nothing
// changed: a clock runs on its own. Not while the tab is hidden: it is read again when shown.
const CLOCK_MS = 60_000;
let clock = null;

function tick() {
  if (!document.hidden) onLiveChange(new Set(["clock"]));
}
document.addEventListener("visibilitychange", () => { if (clock) tick(); });

function signedIn({ focus = true } = {}) {
  const me = session.me;
  $("who").hidden = false;
  $("who").replaceChildren(h("span", {}, me.userId || "operator"), " · ", h("span", { id: "role" }, me.role || "role unknown"),
    " · tenant ", h("strong", { id: "tenant-name" }, session.tenant));
  $("live").hidden = false;
  $("sign-out").hidden = false;
  $("nav").hidden = false;
  stopListening?.();
  stopListening = listen({ onChange: onLiveChange, onState: onLiveState });
  clearInterval(clock);
  clock = setInterval(tick, CLOCK_MS);
  renderView({ focus });
}

function signOut(message = "") {
  stopListening?.();
  stopListening = null;
  clearInterval(clock);
  clock = null;
  session.clear();
  session.me = null;
  current = null;
  for (const id of ["who", "live", "sign-out", "nav"]) $(id).hidden = true;
  showSignIn(message);
}

/** Who the key is: GET /v1/me; a read API without it still lets the key in, read-only. */
async function whoAmI() {
  try {
    return await read("/v1/me");
  } catch (error) {
    if (error.status !== 404) throw error;
    await read("/security-score"); // the key works for this tenant: reading is allowed
    return { userId: null, role: null, tenantId: session.tenant, permissions: ["read"] };
  }
}

function showSignIn(message = "", tenant = session.tenant) {
  const tenantInput = h("input", { id: "signin-tenant", name: "tenant", autocomplete: "organization", value: tenant,
                                   "aria-describedby": "signin-tenant-hint", spellcheck: "false" });
  const keyInput = h("input", { id: "signin-key", name: "key", type: "password", autocomplete: "current-password",
                                required: true, "aria-describedby": "signin-key-hint" });
  const problem = h("p", { id: "signin-problem", class: "bad-text", role: "alert" }, message);
  const form = h("form", { class: "signin", "aria-labelledby": "signin-title", onsubmit: async (event) => {
    event.preventDefault();
    problem.textContent = "";
    session.save(tenantInput.value.trim(), keyInput.value.trim());
    try {
      session.me = await whoAmI();
      if (!session.tenant && session.me.tenantId) session.save(session.me.tenantId, session.key);
      if (!session.tenant) throw new Error("Your key works for every tenant: give the tenant id to show.");
      if (session.me.tenantId && session.me.tenantId !== session.tenant) {
        throw new Error(`This key belongs to tenant ${session.me.tenantId}, not ${session.tenant}.`);
      }
      signedIn();
    } catch (error) {
      session.me = null;
      sessionStorage.clear();
      problem.textContent = error.status === 401 ? "This key is not accepted (wrong, expired or revoked)." : error.message;
      keyInput.focus();
    }
  } },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", { class: "muted" }, "The key stays in this browser tab only and is forgotten when the tab closes."),
    h("div", { class: "field" }, h("label", { for: "signin-tenant" }, "Partner tenant id"), tenantInput,
      h("p", { class: "hint", id: "signin-tenant-hint" }, "Leave empty to use your key's own tenant.")),
    h("div", { class: "field" }, h("label", { for: "signin-key" }, "API key"), keyInput,
      h("p", { class: "hint", id: "signin-key-hint" }, "A key made with POST /v1/keys or python -m shared.auth create-key.")),
    problem,
    h("button", { type: "submit" }, "Sign in"));
  fill(main, form);
  main.dataset.view = "sign-in";
  main.removeAttribute("aria-busy");
  (tenant ? keyInput : tenantInput).focus();
}

async function start() {
  // Links in e-mails: /dashboard?tenant=T&alert=A opens that alert's page.
  const query = new URLSearchParams(location.search);
  const linkedTenant = query.get("tenant");
  if (query.get("alert")) history.replaceState(null, "", `${location.pathname}#/alerts/${encodeURIComponent(query.get("alert"))}`);
  else if (query.size) history.replaceState(null, "", `${location.pathname}${location.hash}`);
  if (linkedTenant && linkedTenant !== session.tenant) {
    localStorage.setItem("csp-dashboard:tenant", linkedTenant);
  }
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  window.addEventListener("hashchange", () => renderView({ focus: true }));
  await loadConfig();
  if (session.tenant && session.key) {
    try {
      session.me = await whoAmI();
      signedIn({ focus: false });
      return;
    } catch (error) {
      return signOut(error.status === 401 ? "Your key is no longer accepted: sign in again." : error.message);
    }
  }
  showSignIn();
}

start();
