// The customer panel's contact details: email and phone as the gateway gives them, masked
// (GET /api/customers/{id}), and for roles that may reveal (leads, supervisors, admins; the
// gateway decides, this only spares others a button that would be refused) a Reveal button
// that asks for a reason and calls POST /api/customers/{id}/reveal, which writes the audit
// entry before it answers. The clear value lives in this panel only, until the chat closes.
import { h, clear } from "../lib/dom";
import { api, ApiError } from "../lib/staff";

export interface CustomerInfo {
  id: number;
  name: string;
  verified: boolean;
  email: string | null;
  phone: string | null;
}

type Field = "email" | "phone";
const REVEALERS = ["lead", "supervisor", "admin"];
const MIN = 10;
const MAX = 500;

export class ContactSection {
  readonly el: HTMLElement;
  private rows = h("dl", { class: "facts contact" });
  private form: HTMLFormElement;
  private reason: HTMLTextAreaElement;
  private formTitle = h("p", { class: "reveal-title" });
  private error = h("p", { class: "error", role: "alert" });
  private info: CustomerInfo | null = null;
  private failed = "";
  private revealed: Partial<Record<Field, string | null>> = {};
  private asking: Field | null = null;

  constructor(private customer: number, private role: string, private key: string) {
    const rid = `reason-${key}`;
    this.error.id = `${rid}-error`;
    // The length is checked here, with a message in the form, not by the browser's tooltip.
    this.reason = h("textarea", { id: rid, class: "reason", maxlength: String(MAX), "aria-describedby": `${rid}-hint ${rid}-error` });
    const cancel = h("button", { class: "link-dark", type: "button" }, "Cancel");
    cancel.addEventListener("click", () => this.close());
    this.form = h(
      "form",
      { class: "reveal-form", hidden: true },
      this.formTitle,
      h("label", { for: rid }, "Reason"),
      this.reason,
      h("p", { id: `${rid}-hint`, class: "hint" }, `${MIN}–${MAX} characters. Kept in the audit log with your name.`),
      this.error,
      h("div", { class: "vrow" }, h("button", { class: "primary small", type: "submit", "data-action": "confirm-reveal" }, "Reveal"), cancel),
    );
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    this.el = h("section", { class: "contact-section", "aria-label": "Contact details" }, this.rows, this.form);
    this.render();
  }

  async load(): Promise<void> {
    try {
      this.info = await api<CustomerInfo>("GET", `/api/customers/${this.customer}`);
      this.failed = "";
    } catch (e) {
      this.failed = e instanceof ApiError && e.status === 403 ? "Contact details are not shown for this customer." : "Contact details could not be loaded.";
    }
    this.render();
  }

  private open(field: Field): void {
    this.asking = field;
    this.formTitle.textContent = `Why do you need the customer's full ${field === "email" ? "email address" : "phone number"}?`;
    this.error.textContent = "";
    this.form.hidden = false;
    this.reason.focus();
  }

  private close(): void {
    const field = this.asking;
    this.asking = null;
    this.form.hidden = true;
    this.reason.value = "";
    this.rows.querySelector<HTMLElement>(`[data-reveal=${field}]`)?.focus();
  }

  private async submit(): Promise<void> {
    const field = this.asking;
    if (!field) return;
    const reason = this.reason.value.trim();
    if ([...reason].length < MIN || [...reason].length > MAX) {
      this.error.textContent = `Give a reason of ${MIN} to ${MAX} characters.`;
      this.reason.setAttribute("aria-invalid", "true");
      this.reason.focus();
      return;
    }
    this.reason.removeAttribute("aria-invalid");
    try {
      const r = await api<{ field: Field; value: string | null }>("POST", `/api/customers/${this.customer}/reveal`, { field, reason });
      this.revealed[field] = r.value;
      this.asking = null;
      this.form.hidden = true;
      this.reason.value = "";
      this.render();
      this.rows.querySelector<HTMLElement>(`[data-value=${field}]`)?.focus();
    } catch (e) {
      this.error.textContent = e instanceof ApiError && e.status === 403 ? "Your role may not reveal contact details." : (e as Error).message;
    }
  }

  /** Redraws the rows; the reason form (and what is typed in it) stays as it is. */
  render(): void {
    clear(this.rows);
    if (!this.info) {
      this.rows.append(h("dt", {}, "Contact"), h("dd", { class: "muted" }, this.failed || "Loading…"));
      return;
    }
    for (const field of ["email", "phone"] as Field[]) {
      const masked = this.info[field];
      const label = field === "email" ? "Email" : "Phone";
      const dd = h("dd", {});
      if (field in this.revealed) {
        dd.append(
          h("span", { class: "clear-value", "data-value": field, tabindex: "-1" }, this.revealed[field] ?? "(none)"),
          h("span", { class: "recorded" }, " · revealed, recorded in the audit log"),
        );
      } else if (!masked) {
        dd.append(h("span", { class: "muted" }, "none given"));
      } else {
        dd.append(h("span", { class: "masked", "data-masked": field }, masked));
        if (REVEALERS.includes(this.role)) {
          const b = h("button", { class: "link-dark", type: "button", "data-reveal": field, "aria-label": `Reveal the ${label.toLowerCase()}` }, "Reveal");
          b.addEventListener("click", () => this.open(field));
          dd.append(" ", b);
        }
      }
      this.rows.append(h("dt", {}, label), dd);
    }
  }
}
