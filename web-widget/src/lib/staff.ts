// Staff login shared by the agent and supervisor consoles: POST /api/session, then every REST
// call carries the session token as a bearer token.
//
// Login has up to three steps. The password; then, for a user with a second factor, the code
// from their authenticator app or a recovery code (the gateway answers `mfa_required`); and for
// a user whose role requires a second factor but who has none, the enrolment: the gateway
// answers `mfa_enrolment_required` with a session that opens only /api/me/mfa…, the console
// shows the QR code and the key from POST /api/me/mfa/totp, confirms the first code, shows the
// recovery codes once, and then logs in again with the next code. The password stays in this
// closure until the login completes, never in storage.
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

/** One REST call with an explicit bearer token (or none); errors become ApiError. */
async function call<T>(method: string, path: string, body: unknown, token: string | undefined): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!r.ok) {
    let code = "error",
      message = `HTTP ${r.status}`;
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

/** A REST call as the logged-in user; a 401 (session ended) returns to the login form. */
export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const s = session();
  try {
    return await call<T>(method, path, body, s?.token);
  } catch (e) {
    if (s && e instanceof ApiError && e.status === 401) {
      forget();
      location.reload();
    }
    throw e;
  }
}

function forget(): void {
  current = null;
  sessionStorage.removeItem(KEY);
}

let leaving = false;

export async function logout(): Promise<void> {
  // The button and a socket closed because the session ended may both ask: one reload.
  if (leaving) return;
  leaving = true;
  try {
    await api("DELETE", "/api/session");
  } finally {
    forget();
    location.reload();
  }
}

interface LoginAnswer {
  token: string;
  user: User;
  mfa_enrolment_required?: boolean;
}
interface Enrolment {
  otpauth_uri: string;
  qr_svg: string;
  secret: string;
}

/** Shows the login form in `root` and resolves once logged in. */
export function login(root: HTMLElement, title: string): Promise<Session> {
  const existing = session();
  if (existing) return Promise.resolve(existing);
  return new Promise((resolve) => {
    const wrap = h("main", { class: "login-wrap" });
    clear(root);
    root.append(wrap);
    let username = "";
    let password = "";

    /** A form card with a heading, its fields, an error line and a submit button. */
    function card(heading: string, fields: Node[], submit: string, onSubmit: (error: HTMLElement) => Promise<void>, extra: Node[] = []): HTMLFormElement {
      const error = h("p", { class: "error", role: "alert" });
      const button = h("button", { class: "primary", type: "submit" }, submit);
      const form = h("form", { class: "login", "aria-labelledby": "login-title" }, h("h1", { id: "login-title" }, heading), ...fields, error, button, ...extra);
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        error.textContent = "";
        button.disabled = true;
        try {
          await onSubmit(error);
        } finally {
          button.disabled = false;
        }
      });
      clear(wrap);
      wrap.append(form);
      return form;
    }

    function done(r: LoginAnswer): void {
      password = "";
      current = { token: r.token, user: r.user };
      sessionStorage.setItem(KEY, JSON.stringify(current));
      resolve(current);
    }

    /** POST /api/session; routes the answer to the next step. */
    async function attempt(otp?: string): Promise<"code" | "enrol" | "done"> {
      const body: Record<string, string> = { username, password };
      if (otp) body.otp = otp;
      const r = await call<LoginAnswer>("POST", "/api/session", body, undefined);
      if (r.mfa_enrolment_required) {
        enrol(r.token);
        return "enrol";
      }
      done(r);
      return "done";
    }

    function passwordStep(): void {
      const user = h("input", { id: "login-user", name: "username", autocomplete: "username", required: true, value: username });
      const pass = h("input", { id: "login-pass", name: "password", type: "password", autocomplete: "current-password", required: true });
      card(title, [h("label", { for: "login-user" }, "Username"), user, h("label", { for: "login-pass" }, "Password"), pass], "Log in", async (error) => {
        username = user.value;
        password = pass.value;
        try {
          await attempt();
        } catch (err) {
          if (err instanceof ApiError && err.code === "mfa_required") return codeStep("");
          password = "";
          pass.value = "";
          error.textContent = err instanceof ApiError && err.status === 401 ? "Wrong username or password." : String((err as Error).message);
          pass.focus();
        }
      });
      (username ? pass : user).focus();
    }

    function codeStep(intro: string): void {
      const otp = h("input", {
        id: "login-otp",
        name: "otp",
        autocomplete: "one-time-code",
        required: true,
        maxlength: "16",
        spellcheck: "false",
        "aria-describedby": "login-otp-hint",
      });
      const back = h("button", { class: "link-dark", type: "button" }, "Start over");
      back.addEventListener("click", () => {
        password = "";
        passwordStep();
      });
      card(
        "Second factor",
        [
          ...(intro ? [h("p", { class: "note", role: "status" }, intro)] : []),
          h("label", { for: "login-otp" }, "Authentication code"),
          otp,
          h("p", { id: "login-otp-hint", class: "hint" }, "The 6-digit code your authenticator app shows for ", h("strong", {}, username), ", or one of your recovery codes."),
        ],
        "Verify",
        async (error) => {
          try {
            await attempt(otp.value.trim());
          } catch (err) {
            otp.value = "";
            error.textContent =
              err instanceof ApiError && err.status === 401
                ? "That code is not valid. Each code works once: if you just used it, wait for the next one."
                : String((err as Error).message);
            otp.focus();
          }
        },
        [back],
      );
      otp.focus();
    }

    async function enrol(limited: string): Promise<void> {
      let e: Enrolment;
      try {
        e = await call<Enrolment>("POST", "/api/me/mfa/totp", {}, limited);
      } catch (err) {
        card("Set up a second factor", [h("p", {}, `The enrolment could not start: ${(err as Error).message}`)], "Start over", async () => passwordStep());
        return;
      }
      const code = h("input", { id: "enrol-code", name: "code", autocomplete: "one-time-code", inputmode: "numeric", required: true, maxlength: "6", pattern: "[0-9]{6}" });
      const qr = h("img", { class: "qr", src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(e.qr_svg)}`, alt: "QR code to scan with your authenticator app", width: "200", height: "200" });
      const grouped = e.secret.replace(/(.{4})/g, "$1 ").trim();
      card(
        "Set up a second factor",
        [
          h("p", {}, "Your role logs in with a second factor. Scan this QR code with an authenticator app, or type the key into it, then enter the 6-digit code it shows."),
          qr,
          h("p", { class: "secret" }, "Key: ", h("code", { "data-secret": e.secret }, grouped)),
          h("details", {}, h("summary", {}, "Setup link (otpauth URI)"), h("code", { class: "uri" }, e.otpauth_uri)),
          h("label", { for: "enrol-code" }, "Code from the app"),
          code,
        ],
        "Confirm",
        async (error) => {
          try {
            const r = await call<{ recovery_codes: string[] }>("POST", "/api/me/mfa/totp/confirm", { code: code.value.trim() }, limited);
            // The enrolment-only session has done its job.
            call("DELETE", "/api/session", undefined, limited).catch(() => {});
            recovery(r.recovery_codes);
          } catch (err) {
            code.value = "";
            error.textContent = err instanceof ApiError && err.status === 401 ? "That code is not valid. Check the time on your phone and try the next code." : String((err as Error).message);
            code.focus();
          }
        },
      );
      code.focus();
    }

    function recovery(codes: string[]): void {
      card(
        "Save your recovery codes",
        [
          h("p", {}, "Each code logs you in once if you lose your authenticator. Keep them somewhere safe, offline: they are shown only now."),
          h("ul", { class: "recovery", "aria-label": "Recovery codes" }, ...codes.map((c) => h("li", {}, h("code", {}, c)))),
        ],
        "I have saved them — continue",
        async () => codeStep("The second factor is set up. Log in with the next code your app shows."),
      );
      wrap.querySelector<HTMLElement>("button[type=submit]")?.focus();
    }

    passwordStep();
  });
}
