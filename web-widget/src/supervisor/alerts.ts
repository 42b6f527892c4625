// Security alerts pushed by the gateway over the staff socket (`security_alert`, e.g. a
// customer's step-up locked after the daily cap of wrong codes), newest first. They are live
// only: an alert sent while this console was closed is in the audit log, not here.
import { h, clear } from "../lib/dom";
import { when } from "./clock";

export interface AlertFrame {
  type: "security_alert";
  kind: string;
  /** info, warning or critical. */
  level?: string;
  /** The staff member the alert is about. */
  actor?: number | null;
  ticket?: number | null;
  customer?: number | null;
  at: string;
  message: string;
}

const KEEP = 20;

export function alerts(): { panel: HTMLElement; add(f: AlertFrame): void } {
  const count = h("span", { class: "count", id: "alert-count" }, "0");
  const list = h("ol", { class: "alerts-list", id: "alerts" });
  const empty = h("p", { class: "muted" }, "No security alert since this console opened.");
  // Announced at once: an alert is what a supervisor must not miss.
  const live = h("div", { class: "sr-only", role: "alert" });
  const panel = h(
    "section",
    { class: "card alerts", "aria-labelledby": "alerts-h" },
    h("h2", { id: "alerts-h" }, "Security alerts ", count),
    empty,
    list,
    live,
  );
  let n = 0;
  return {
    panel,
    add(f: AlertFrame) {
      n += 1;
      count.textContent = String(n);
      empty.hidden = true;
      panel.classList.add("has-alerts");
      list.prepend(
        h(
          "li",
          { class: "alert-item", "data-kind": f.kind, "data-level": f.level ?? "warning" },
          h("span", { class: "alert-level" }, f.level ?? "warning"),
          " ",
          h("strong", {}, f.kind.replace(/_/g, " ")),
          " ",
          h("span", { class: "meta" }, when(f.at)),
          h("p", {}, f.message),
          h("p", { class: "meta" }, [f.actor != null && `staff user ${f.actor}`, f.ticket != null && `ticket ${f.ticket}`, f.customer != null && `customer ${f.customer}`].filter(Boolean).join(" · ")),
        ),
      );
      while (list.children.length > KEEP) list.lastElementChild?.remove();
      clear(live);
      live.append(`Security alert (${f.level ?? "warning"}): ${f.message}`);
    },
  };
}
