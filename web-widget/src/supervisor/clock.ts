// The gateway's clock as seen from the browser: grant views carry the gateway's `now`, and the
// console measures time left and ages against it, so a browser whose clock is off still counts
// down to the moment the gateway will refuse.

let offset = 0;

/** Remembers the gateway's time of a response (RFC 3339). */
export function syncServerClock(now: string | undefined): void {
  const t = now ? Date.parse(now) : NaN;
  if (!Number.isNaN(t)) offset = t - Date.now();
}

/** The gateway's time now, in milliseconds since the epoch. */
export function serverNow(): number {
  return Date.now() + offset;
}

/** "2 Mar, 14:05:09" in the browser's language, from an RFC 3339 time. */
export function when(at: string | null | undefined): string {
  if (!at) return "";
  return new Date(at).toLocaleString([], { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** "1 h 30 min", "45 min" for a duration in minutes. */
export function minutes(n: number): string {
  const h = Math.floor(n / 60), m = n % 60;
  if (!h) return `${m} min`;
  return m ? `${h} h ${m} min` : `${h} h`;
}
