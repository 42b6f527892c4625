// Staff login shared by the agent and supervisor consoles: POST /api/session, then every REST
// call carries the session token as a bearer token.
//
// Where the token lives: in memory, mirrored to sessionStorage so that reloading the tab does
// not log the agent out. Not localStorage: that outlives the tab and the browser session, is
// shared by every tab of the origin, and would leave a bearer credential on a shared support
// desk PC after the agent walks away. Logging out deletes the session on the server as well.
import { h, clear } from "./dom";

const KEY = "deskgate.staff";

export interface User {
  id: number;
  username: string;
  name: string;
  role: string;
  capacity: number;
  active?: boolean;
}

export interface Session {
  token: string;
  user: User;
}

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

let current: Session | null = null;

export function session(): Session | null {
  if (current) return current;
  try {
    current = JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch {
    current = null;
  }
  return current;
}

export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const s = session();
  const headers: Record<string, string> = {};
  if (s) headers.authorization = `Bearer ${s.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401 && s) {
    forget();
    location.reload();
  }
  if (!r.ok) {
    let code = "error", message = `HTTP ${r.status}`;
    try {
      const e = await r.json();
      code = e.error?.code ?? code;
      message = e.error?.message ?? message;
    } catch {
      /* not JSON */
    }
    throw new ApiError(r.status, code, message);
  }
  return r.status === 204 ? (undefined as T) : r.json();
}

function forget(): void {
  current = null;
  sessionStorage.removeItem(KEY);
}

export async function logout(): Promise<void> {
  try {
    await api("DELETE", "/api/session");
  } finally {
    forget();
    location.reload();
  }
}

/** Shows the login form in `root` and resolves once logged in. */
export function login(root: HTMLElement, title: string): Promise<Session> {
  const existing = session();
  if (existing) return Promise.resolve(existing);
  return new Promise((resolve) => {
    clear(root);
    const user = h("input", { id: "login-user", name: "username", autocomplete: "username", required: true });
    const pass = h("input", { id: "login-pass", name: "password", type: "password", autocomplete: "current-password", required: true });
    const error = h("p", { class: "error", role: "alert" });
    const form = h(
      "form",
      { class: "login", "aria-labelledby": "login-title" },
      h("h1", { id: "login-title" }, title),
      h("label", { for: "login-user" }, "Username"),
      user,
      h("label", { for: "login-pass" }, "Password"),
      pass,
      error,
      h("button", { class: "primary", type: "submit" }, "Log in"),
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      error.textContent = "";
      try {
        const r = await api<{ token: string; user: User }>("POST", "/api/session", {
          username: user.value,
          password: pass.value,
        });
        current = { token: r.token, user: r.user };
        sessionStorage.setItem(KEY, JSON.stringify(current));
        pass.value = "";
        resolve(current);
      } catch (err) {
        error.textContent = err instanceof ApiError && err.status === 401 ? "Wrong username or password." : String((err as Error).message);
        pass.focus();
      }
    });
    root.append(h("main", { class: "login-wrap" }, form));
    user.focus();
  });
}
