// REST calls of the supervisor console. Most go through lib/staff's `api`, which treats any
// 401 as an ended session; approving a request answers 401 `second_factor_required` for a
// wrong or missing authenticator code, which must not log the approver out, so such calls use
// `call` here and leave the session alone unless the session itself is refused.
import { ApiError, api, session } from "../lib/staff";

export { api, ApiError };

export async function call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const s = session();
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (s) headers.authorization = `Bearer ${s.token}`;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data: any = null;
  try {
    data = await r.json();
  } catch {
    /* not JSON */
  }
  if (r.ok) return data as T;
  const code = data?.error?.code ?? "error";
  if (r.status === 401 && code === "unauthenticated") {
    // The session ended: the next ordinary call logs out the same way the rest of the console does.
    await api("GET", "/api/me").catch(() => undefined);
  }
  throw new ApiError(r.status, code, data?.error?.message ?? `HTTP ${r.status}`);
}

/** A short message for an error shown to the person who acted. */
export function explain(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 403) return "Your role may not do this.";
    if (e.status === 404) return "Not found.";
    return e.message;
  }
  return "The gateway could not be reached; try again.";
}
