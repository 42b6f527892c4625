// What each role may do, as gateway/src/auth/permission.rs decides it. The console uses this
// only to choose what to show; the gateway checks every request itself and refuses the rest.

export type Permission =
  | "work_tickets"
  | "view_queue"
  | "read_all_tickets"
  | "reveal_pii"
  | "request_grant"
  | "review_grant"
  | "view_all_grants"
  | "revoke_grant"
  | "read_audit"
  | "manage_users"
  | "set_legal_hold"
  // Not a permission of the matrix: who the gateway sends `security_alert` frames to.
  | "security_alerts";

const MATRIX: Record<Permission, readonly string[]> = {
  work_tickets: ["agent", "lead", "supervisor", "admin"],
  view_queue: ["agent", "lead", "supervisor", "admin"],
  read_all_tickets: ["lead", "supervisor", "admin"],
  reveal_pii: ["lead", "supervisor", "admin"],
  request_grant: ["supervisor"],
  review_grant: ["approver"],
  view_all_grants: ["approver", "admin"],
  revoke_grant: ["approver", "admin"],
  read_audit: ["approver", "admin"],
  manage_users: ["admin"],
  set_legal_hold: ["admin"],
  security_alerts: ["supervisor", "admin"],
};

export function can(role: string, p: Permission): boolean {
  return MATRIX[p].includes(role);
}
