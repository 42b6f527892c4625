//! Security events of step-up verification and staff second factors. Every one goes through
//! [`record`], which logs it on the `deskgate::security` target: ids, the action and the
//! outcome, never a code, a seed, an email address or a message.

use crate::ids::{CustomerId, TicketId, UserId};

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

/// Records a security event. The audit log is fed from here.
pub fn record(e: &Event<'_>) {
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
