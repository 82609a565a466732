// The two APIs the page talks to: the read API (this origin) and the write API (writeApiUrl, cross-origin,
// allowed by its DASHBOARD_ORIGINS). Both with the visitor's key as a Bearer token; errors come back as
// ApiError carrying the problem+json's title and detail.

const TENANT = "csp-dashboard:tenant"; // localStorage: the tenant is not a secret
const KEY = "csp-dashboard:key"; // sessionStorage: the key lives as long as the tab's session

export class ApiError extends Error {
  constructor(status, problem, fallback) {
    const text = problem?.detail || problem?.title || fallback || `HTTP ${status}`;
    super(text);
    this.status = status;
    this.problem = problem;
  }
}

export const session = {
  get tenant() { return localStorage.getItem(TENANT) || ""; },
  get key() { return sessionStorage.getItem(KEY) || ""; },
  save(tenant, key) { localStorage.setItem(TENANT, tenant); sessionStorage.setItem(KEY, key); },
  clear() { localStorage.removeItem(TENANT); sessionStorage.removeItem(KEY); },
  /** What /v1/me said of the key (role, permissions); set at sign-in. */
  me: null,
  config: { writeApiUrl: null },
  can(permission) { return Boolean(this.me?.permissions?.includes(permission)); },
};

function headers(extra = {}) {
  return { Authorization: `Bearer ${session.key}`, Accept: "application/json", ...extra };
}

async function answer(response, what) {
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json().catch(() => null) : null;
  if (!response.ok) throw new ApiError(response.status, body, `${what}: HTTP ${response.status}`);
  return body;
}

export function tenantPath(path) {
  return `/v1/tenants/${encodeURIComponent(session.tenant)}${path}`;
}

/** GET on the read API; `path` is under the tenant unless it starts with /v1/ or is a full nextLink. */
export async function read(path, { signal } = {}) {
  let url = path;
  if (/^https?:/.test(path)) {
    // An @odata.nextLink: the API names itself by the address it was reached at; keep this origin's.
    const next = new URL(path);
    url = next.pathname + next.search;
  } else if (!path.startsWith("/v1/")) {
    url = tenantPath(path);
  }
  const response = await fetch(url, { headers: headers(), signal, cache: "no-store" });
  return answer(response, `GET ${url.split("?")[0]}`);
}

/** GET, but null when the endpoint does not exist on this deployment yet (404 not of our tenant's data). */
export async function readIfThere(path, options) {
  try {
    return await read(path, options);
  } catch (error) {
    // An unknown route answers Starlette's bare "Not Found"; an unknown thing of ours says which.
    if (error.status === 404 && [undefined, null, "Not Found"].includes(error.problem?.detail)) return null;
    throw error;
  }
}

/** A change on the write API; a network failure names the likely cause (CORS, the API down). */
export async function write(method, path, body) {
  const base = session.config.writeApiUrl;
  if (!base) throw new ApiError(0, null, "The write API's address is unknown (GET /dashboard/config.json failed).");
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  let response;
  try {
    response = await fetch(`${base}${tenantPath(path)}`, init);
  } catch {
    throw new ApiError(0, null, `The write API at ${base} cannot be reached from this page (is it up, and does its ` +
      `DASHBOARD_ORIGINS allow ${location.origin}?).`);
  }
  return answer(response, `${method} ${path}`);
}

/** GET on the write API (the Graph connection lives there). */
export function writeApiGet(path) {
  return write("GET", path);
}

export async function loadConfig() {
  try {
    const response = await fetch("/dashboard/config.json", { cache: "no-store" });
    if (response.ok) session.config = await response.json();
  } catch {
    // Reads still work; writes say why they cannot.
  }
}
