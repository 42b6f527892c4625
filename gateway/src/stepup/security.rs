//! Security events of step-up verification and staff second factors. Every one goes through
//! [`StepUp::record`](super::StepUp::record), which logs it on the `deskgate::security` target
//! and appends it to the audit log: ids, the action and the outcome, never a code, a seed, an
//! email address or a message.

use crate::audit::{Action, Context, Event as AuditEvent, Outcome};
use crate::ids::{CustomerId, TicketId, UserId};
use recorder::audit::ObjectRef;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    VerificationSent,
    VerificationResent,
    VerificationSendFailed,
    VerificationPassed,
    VerificationFailed,
    VerificationMaxAttempts,
    VerificationLocked,
    VerificationRefusedLocked,
    ActionAuthorised,
    ActionRefused,
    TicketFlagged,
    MfaEnrolled,
    MfaPassed,
    MfaFailed,
    MfaReplay,
    MfaRecoveryUsed,
    MfaLocked,
    MfaDisabled,
    MfaReset,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VerificationSent => "verification_sent",
            Kind::VerificationResent => "verification_resent",
            Kind::VerificationSendFailed => "verification_send_failed",
            Kind::VerificationPassed => "verification_passed",
            Kind::VerificationFailed => "verification_failed",
            Kind::VerificationMaxAttempts => "verification_max_attempts",
            Kind::VerificationLocked => "verification_locked",
            Kind::VerificationRefusedLocked => "verification_refused_locked",
            Kind::ActionAuthorised => "sensitive_action_authorised",
            Kind::ActionRefused => "sensitive_action_refused",
            Kind::TicketFlagged => "ticket_flagged_for_step_up",
            Kind::MfaEnrolled => "mfa_enrolled",
            Kind::MfaPassed => "mfa_passed",
            Kind::MfaFailed => "mfa_failed",
            Kind::MfaReplay => "mfa_replay",
            Kind::MfaRecoveryUsed => "mfa_recovery_code_used",
            Kind::MfaLocked => "mfa_locked",
            Kind::MfaDisabled => "mfa_disabled",
            Kind::MfaReset => "mfa_reset",
        }
    }
}

/// One event; fields that do not apply stay `None`.
#[derive(Clone, Debug, Default)]
pub struct Event<'a> {
    pub kind: Option<Kind>,
    /// The staff member who acted (the agent, the admin, the user logging in).
    pub actor: Option<UserId>,
    /// The staff member acted upon (an admin reset).
    pub subject: Option<UserId>,
    pub customer: Option<CustomerId>,
    pub ticket: Option<TicketId>,
    pub challenge: Option<i64>,
    pub action: Option<&'a str>,
    /// A short reason without secrets or personal data ("smtp refused", "wrong code").
    pub detail: Option<&'a str>,
}

impl<'a> Event<'a> {
    pub fn new(kind: Kind) -> Event<'a> {
        Event {
            kind: Some(kind),
            ..Default::default()
        }
    }
}

/// The audit log's name for an event and its outcome; `None` for events that are logged but
/// not audited (a resend is the same challenge sent again, a refused send repeats the lock).
pub fn audited(kind: Kind) -> Option<(Action, Outcome)> {
    Some(match kind {
        Kind::VerificationSent => (Action::VerificationSent, Outcome::Allowed),
        Kind::VerificationResent => (Action::VerificationSent, Outcome::Allowed),
        Kind::VerificationSendFailed => (Action::VerificationSent, Outcome::Failed),
        Kind::VerificationPassed => (Action::VerificationPassed, Outcome::Allowed),
        Kind::VerificationFailed => (Action::VerificationFailed, Outcome::Failed),
        Kind::VerificationMaxAttempts => (Action::VerificationFailed, Outcome::Denied),
        Kind::VerificationLocked => (Action::VerificationLocked, Outcome::Denied),
        Kind::VerificationRefusedLocked => return None,
        Kind::ActionAuthorised => (Action::SensitiveAction, Outcome::Allowed),
        Kind::ActionRefused => (Action::SensitiveAction, Outcome::Denied),
        Kind::TicketFlagged => (Action::TicketFlagged, Outcome::Allowed),
        Kind::MfaEnrolled => (Action::MfaEnrolled, Outcome::Allowed),
        Kind::MfaPassed => (Action::MfaPassed, Outcome::Allowed),
        Kind::MfaFailed => (Action::MfaFailed, Outcome::Failed),
        Kind::MfaReplay => (Action::MfaFailed, Outcome::Denied),
        Kind::MfaRecoveryUsed => (Action::MfaRecoveryUsed, Outcome::Allowed),
        Kind::MfaLocked => (Action::MfaFailed, Outcome::Denied),
        Kind::MfaDisabled => (Action::MfaDisabled, Outcome::Allowed),
        Kind::MfaReset => (Action::MfaReset, Outcome::Allowed),
    })
}

/// The audit entry of an event: the kind's detail names what happened beyond the action
/// (`resent`, `replay`, `max_attempts`), the action verified and the challenge are the object.
/// `from` is where the request or connection came from (address, user agent, request id).
pub fn audit_event(from: &Context, e: &Event<'_>) -> Option<(Context, AuditEvent)> {
    let kind = e.kind?;
    let (action, outcome) = audited(kind)?;
    // A customer's own step (a code typed in the widget) has no staff actor.
    let mut ctx = if e.actor.is_some() || e.subject.is_some() {
        Context::system()
    } else {
        Context::customer()
    };
    ctx.actor = e.actor;
    ctx.ip = from.ip.clone();
    ctx.user_agent = from.user_agent.clone();
    ctx.request_id = from.request_id.clone();
    let mut ev = AuditEvent::new(action, outcome);
    ev.customer = e.customer;
    ev.object = match (e.challenge, e.ticket, e.subject) {
        (Some(c), _, _) => Some(ObjectRef::new("verification", c)),
        (None, Some(t), _) => Some(ObjectRef::new("ticket", t.0)),
        (None, None, Some(u)) => Some(ObjectRef::new("user", u.0)),
        (None, None, None) => None,
    };
    let mut detail: Vec<&str> = Vec::new();
    if let Some(a) = e.action {
        detail.push(a);
    }
    match kind {
        Kind::VerificationResent => detail.push("resent"),
        Kind::VerificationMaxAttempts => detail.push("max_attempts"),
        Kind::MfaReplay => detail.push("replay"),
        Kind::MfaLocked => detail.push("locked"),
        _ => {}
    }
    if let Some(d) = e.detail {
        detail.push(d);
    }
    if !detail.is_empty() {
        ev.detail = Some(detail.join(": "));
    }
    Some((ctx, ev))
}

/// Logs a security event on the `deskgate::security` target.
pub fn log(e: &Event<'_>) {
    let kind = e.kind.map(Kind::as_str).unwrap_or("unknown");
    tracing::info!(
        target: "deskgate::security",
        event = kind,
        actor = e.actor.map(|u| u.0),
        subject = e.subject.map(|u| u.0),
        customer = e.customer.map(|c| c.0),
        ticket = e.ticket.map(|t| t.0),
        challenge = e.challenge,
        action = e.action,
        detail = e.detail,
        "security event"
    );
}

/// Whether staff of this role receive security alerts (the `security_alert` frame, and
/// `GET /api/alerts` for those raised while they were away).
pub fn receives_alerts(role: crate::store::Role) -> bool {
    matches!(
        role,
        crate::store::Role::Supervisor | crate::store::Role::Admin
    )
}

/// A security alert: what needs a person's attention. The same fields as the `security_alert`
/// frame (docs/protocol.md), live or read back from the audit log.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Alert {
    /// `verification_locked`: a customer reached the daily cap of wrong codes; the anomaly
    /// rules' names otherwise (`pii_access_burst`, `failed_verifications`, …).
    pub kind: String,
    /// `info`, `warning` or `critical`.
    pub level: crate::anomaly::Level,
    /// The staff member the alert is about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<TicketId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerId>,
    pub at: crate::clock::Timestamp,
    pub message: String,
}

impl Alert {
    /// Step-up locked for a customer; `detail` says how (`10 wrong codes today`).
    pub fn locked(
        ticket: Option<TicketId>,
        customer: Option<CustomerId>,
        at: crate::clock::Timestamp,
        detail: &str,
    ) -> Alert {
        let who = customer.map_or_else(|| "a customer".to_string(), |c| format!("customer {c}"));
        let on = ticket.map_or_else(String::new, |t| format!(" (ticket {t})"));
        Alert {
            kind: "verification_locked".into(),
            level: crate::anomaly::Level::Critical,
            actor: None,
            ticket,
            customer,
            at,
            message: format!(
                "Step-up verification locked for {who} after {detail}{on}. Someone may be guessing codes."
            ),
        }
    }

    /// The alert an audit entry records, if it records one.
    pub fn from_audit(r: &crate::store::AuditRecord) -> Option<Alert> {
        let e = &r.entry;
        let ticket = e
            .object
            .as_ref()
            .filter(|o| o.kind == "ticket")
            .map(|o| TicketId(o.id));
        if e.action == Action::AnomalyAlert.as_str() {
            let (level, kind, message) = crate::anomaly::parse_detail(e.detail.as_deref()?)?;
            return Some(Alert {
                kind,
                level,
                actor: e.object.as_ref().filter(|o| o.kind == "user").map(|o| o.id),
                ticket,
                customer: e.customer_id.map(CustomerId),
                at: crate::clock::Timestamp(e.at),
                message,
            });
        }
        if e.action != Action::VerificationLocked.as_str() {
            return None;
        }
        let detail = e.detail.as_deref().unwrap_or("too many wrong codes today");
        Some(Alert::locked(
            ticket,
            e.customer_id.map(CustomerId),
            crate::clock::Timestamp(e.at),
            detail,
        ))
    }

    pub fn frame(&self) -> std::sync::Arc<str> {
        crate::protocol::ServerFrame::SecurityAlert {
            kind: &self.kind,
            level: self.level,
            actor: self.actor,
            ticket: self.ticket,
            customer: self.customer,
            at: self.at,
            message: &self.message,
        }
        .encode()
    }
}
