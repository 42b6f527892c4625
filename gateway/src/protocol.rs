//! The `deskgate.v1` wire format (docs/protocol.md): frames clients send, parsed and validated
//! at the edge, and frames the gateway sends, serialised once and shared.

use crate::clock::Timestamp;
use crate::ids::{ConversationId, Seq, TicketId, UserId};
use crate::store::{Author, AuthorKind, Message, Note, Ticket, TicketStatus, User};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The WebSocket subprotocol clients must offer.
pub const SUBPROTOCOL: &str = "deskgate.v1";

/// Longest chat message, in characters.
pub const MAX_TEXT_CHARS: usize = 8000;
/// Longest `ref` and `client_id`, in bytes.
pub const MAX_ID_BYTES: usize = 64;

/// WebSocket close codes (docs/protocol.md, "Close codes").
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const TOO_LARGE: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    /// Service restart: this node is stopping (drain); reconnect, to any node, and resume.
    pub const SERVICE_RESTART: u16 = 1012;
    pub const UNAUTHENTICATED: u16 = 4001;
    pub const REVOKED: u16 = 4003;
    /// The page the socket was opened from may not embed this site's widget.
    pub const ORIGIN_REFUSED: u16 = 4004;
    pub const RATE_LIMITED: u16 = 4008;
    pub const TOO_SLOW: u16 = crate::hub::CLOSE_TOO_SLOW;
    /// Nothing (not even a pong) arrived for `idle_timeout`.
    pub const IDLE: u16 = 4010;
    /// The client's address already holds `max_connections_per_ip` sockets.
    pub const TOO_MANY_CONNECTIONS: u16 = 4013;
}

/// Error codes of `error` frames (docs/protocol.md, "Error codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidFrame,
    UnknownType,
    InvalidText,
    NotFound,
    Forbidden,
    Conflict,
    Capacity,
    Unavailable,
    RateLimited,
    TooLarge,
    // Step-up verification and staff second factors.
    VerificationRequired,
    CannotVerify,
    MailFailed,
    Locked,
    RetryLater,
    Unauthenticated,
    /// (REST) login: the password was right; the second-factor code is missing.
    MfaRequired,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidFrame => "invalid_frame",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidText => "invalid_text",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Capacity => "capacity",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::VerificationRequired => "verification_required",
            ErrorCode::CannotVerify => "cannot_verify",
            ErrorCode::MailFailed => "mail_failed",
            ErrorCode::Locked => "locked",
            ErrorCode::RetryLater => "retry_later",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::MfaRequired => "mfa_required",
        }
    }
}

/// A chat message's text: not blank, at most [`MAX_TEXT_CHARS`] characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(s: String) -> Result<MessageText, &'static str> {
        if s.trim().is_empty() {
            return Err("text must not be blank");
        }
        if s.chars().count() > MAX_TEXT_CHARS {
            return Err("text is longer than 8000 characters");
        }
        Ok(MessageText(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client's id for a message it sends, making retries idempotent: 1–64 visible characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(s: String) -> Result<ClientId, &'static str> {
        if s.is_empty() || s.len() > MAX_ID_BYTES || s.chars().any(char::is_control) {
            return Err("client_id must be 1-64 characters without control characters");
        }
        Ok(ClientId(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub struct ResumePoint {
    pub conversation: ConversationId,
    pub after: Seq,
}

/// A frame from a client, as typed on the wire (before text and ids are validated).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Hello {
        token: String,
        #[serde(default)]
        resume: Vec<ResumePoint>,
    },
    Send {
        #[serde(default)]
        ticket: Option<TicketId>,
        client_id: String,
        text: String,
    },
    Note {
        ticket: TicketId,
        client_id: String,
        text: String,
    },
    Typing {
        #[serde(default)]
        ticket: Option<TicketId>,
        active: bool,
    },
    Read {
        #[serde(default)]
        ticket: Option<TicketId>,
        seq: Seq,
    },
    Claim {
        ticket: TicketId,
    },
    Transfer {
        ticket: TicketId,
        #[serde(default)]
        to: Option<UserId>,
    },
    Resolve {
        ticket: TicketId,
    },
    Sync {
        ticket: TicketId,
        #[serde(default)]
        after: Seq,
    },
    Ping,
    /// Agent: ask the ticket's customer to verify for an action (a code by email).
    RequestVerification {
        ticket: TicketId,
        action: String,
    },
    /// Agent: send a pending challenge's code again.
    ResendVerification {
        challenge: i64,
    },
    /// Customer: the code from the email. Never a chat message; never shown to staff.
    Verify {
        challenge: i64,
        code: secrecy::SecretString,
    },
}

/// The `type` of every frame a client may send; any other is refused as unknown.
pub const CLIENT_TYPES: &[&str] = &[
    "hello",
    "send",
    "note",
    "typing",
    "read",
    "claim",
    "transfer",
    "resolve",
    "sync",
    "ping",
    "request_verification",
    "resend_verification",
    "verify",
];

/// A parsed client frame and the `ref` to echo in the reply.
#[derive(Debug)]
pub struct Inbound {
    pub frame: ClientFrame,
    pub reference: Option<String>,
}

/// Why a text frame could not be read. The message never quotes the frame: a client that put a
/// card number in the wrong field must not get it echoed back.
#[derive(Debug, PartialEq, Eq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
    pub reference: Option<String>,
}

pub fn parse_frame(text: &str) -> Result<Inbound, FrameError> {
    let fail = |code, message: &str, reference: Option<String>| FrameError {
        code,
        message: message.to_string(),
        reference,
    };
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|_| fail(ErrorCode::InvalidFrame, "frame is not valid JSON", None))?;
    let serde_json::Value::Object(mut obj) = value else {
        return Err(fail(
            ErrorCode::InvalidFrame,
            "frame must be a JSON object",
            None,
        ));
    };
    let reference = match obj.remove("ref") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(r)) if r.len() <= MAX_ID_BYTES => Some(r),
        Some(_) => {
            return Err(fail(
                ErrorCode::InvalidFrame,
                "ref must be a string of at most 64 bytes",
                None,
            ))
        }
    };
    let kind = match obj.get("type") {
        Some(serde_json::Value::String(t)) => t.clone(),
        _ => {
            return Err(fail(
                ErrorCode::InvalidFrame,
                "frame has no string field `type`",
                reference,
            ))
        }
    };
    if !CLIENT_TYPES.contains(&kind.as_str()) {
        return Err(fail(
            ErrorCode::UnknownType,
            "unknown frame type",
            reference,
        ));
    }
    match serde_json::from_value::<ClientFrame>(serde_json::Value::Object(obj)) {
        Ok(frame) => Ok(Inbound { frame, reference }),
        Err(e) => {
            let detail = e.to_string();
            // serde names a missing field without quoting input; other errors may quote it.
            let message = if detail.starts_with("missing field") {
                format!("{kind}: {detail}")
            } else {
                format!("{kind}: a field has the wrong type or value")
            };
            Err(FrameError {
                code: ErrorCode::InvalidFrame,
                message,
                reference,
            })
        }
    }
}

/// What the sender learns about a card number found in their message: the brand and at most
/// the last four digits (PCI DSS 3.4.1).
#[derive(Debug, Serialize)]
pub struct BlockedFinding<'a> {
    pub brand: &'static str,
    pub last4: &'a str,
}

impl<'a> BlockedFinding<'a> {
    pub fn all(findings: &'a [crate::screen::Finding]) -> Vec<BlockedFinding<'a>> {
        findings
            .iter()
            .map(|f| BlockedFinding {
                brand: f.brand().id(),
                last4: f.last4(),
            })
            .collect()
    }
}

/// The plain explanation a sender gets with `blocked`.
pub fn blocked_message(findings: &[crate::screen::Finding]) -> String {
    let endings: Vec<&str> = findings.iter().map(|f| f.last4()).collect();
    let which = if endings.is_empty() {
        String::from("a payment card number")
    } else {
        format!("a payment card number ending {}", endings.join(", "))
    };
    format!(
        "Not sent: the message contains {which}. For your safety, card numbers are never shared in chat."
    )
}

/// A ticket as customers see it: no internal fields, the agent's display name only.
#[derive(Debug, Serialize)]
pub struct CustomerTicket {
    pub id: TicketId,
    pub conversation: ConversationId,
    pub status: TicketStatus,
    pub agent: Option<AgentName>,
}

#[derive(Debug, Serialize)]
pub struct AgentName {
    pub name: String,
}

impl From<&Ticket> for CustomerTicket {
    fn from(t: &Ticket) -> Self {
        CustomerTicket {
            id: t.id,
            conversation: t.conversation,
            status: t.status,
            agent: t.agent.as_ref().map(|a| AgentName {
                name: a.name.clone(),
            }),
        }
    }
}

/// The conversation a customer has open, in `welcome`.
#[derive(Debug, Serialize)]
pub struct OpenConversation {
    pub conversation: ConversationId,
    pub ticket: TicketId,
    pub status: TicketStatus,
    pub last_seq: Seq,
    /// Read receipts as stored, so a reconnecting widget shows what each side has read.
    pub customer_read_seq: Seq,
    pub agent_read_seq: Seq,
}

/// A verification waiting for the customer's code, as the widget shows it: in
/// `verification_requested`, and in `welcome` so that a reload or another tab asks again.
#[derive(Clone, Debug, Serialize)]
pub struct PendingVerification {
    pub ticket: TicketId,
    pub challenge: i64,
    pub action: String,
    pub expires_at: Timestamp,
    pub attempts_left: u32,
    /// Where the code went, masked.
    pub destination: String,
}

#[derive(Debug, Serialize)]
pub struct CustomerSelf {
    pub id: crate::ids::CustomerId,
    pub name: String,
    pub verified: bool,
    /// An email address is on file (typed before the chat or signed by the site): an agent's
    /// reply while no tab is open goes there. Never the address itself.
    pub email_on_file: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueOp {
    Upsert,
    Remove,
    /// The whole queue view, replacing what the client holds.
    Reset,
}

/// A queued ticket's step-up flag, in a queue snapshot.
#[derive(Debug, Serialize)]
pub struct QueueFlag {
    pub ticket: TicketId,
    pub phrase: String,
}

/// A frame the gateway sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    #[serde(rename = "welcome")]
    WelcomeCustomer {
        customer: CustomerSelf,
        conversation: Option<OpenConversation>,
        /// The open conversation's verifications still waiting for a code, newest first.
        verifications: &'a [PendingVerification],
    },
    #[serde(rename = "welcome")]
    WelcomeAgent {
        user: &'a User,
        assigned: &'a [Ticket],
        queue: &'a [Ticket],
    },
    Message {
        ticket: TicketId,
        #[serde(flatten)]
        message: &'a Message,
    },
    Ack {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        client_id: &'a str,
        ticket: TicketId,
        conversation: ConversationId,
        seq: Seq,
        at: Timestamp,
        duplicate: bool,
    },
    Resumed {
        conversation: ConversationId,
        last_seq: Seq,
    },
    /// The sender's message was withheld by the card-number screen. For a chat message, a
    /// placeholder took its place in the conversation under `seq`; a note is not stored.
    Blocked {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        client_id: &'a str,
        ticket: TicketId,
        #[serde(skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<Seq>,
        reason: &'static str,
        findings: Vec<BlockedFinding<'a>>,
        message: String,
    },
    Typing {
        ticket: TicketId,
        from: &'a Author,
        active: bool,
    },
    Read {
        ticket: TicketId,
        by: AuthorKind,
        seq: Seq,
    },
    #[serde(rename = "ticket")]
    TicketStaff {
        ticket: &'a Ticket,
    },
    #[serde(rename = "ticket")]
    TicketCustomer {
        ticket: CustomerTicket,
    },
    Queue {
        op: QueueOp,
        ticket: &'a Ticket,
    },
    /// To a staff connection whose `queue` events fell behind (a burst of new tickets): the
    /// queue as it is now (`op: reset`), with the step-up flags of its tickets.
    #[serde(rename = "queue")]
    QueueSnapshot {
        op: QueueOp,
        tickets: &'a [Ticket],
        flags: &'a [QueueFlag],
    },
    Note {
        #[serde(flatten)]
        note: &'a Note,
    },
    Ok {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ticket: Option<&'a Ticket>,
    },
    Pong {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    Error {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        code: ErrorCode,
        message: &'a str,
    },
    /// To the customer: a code was emailed; answer with `verify`.
    VerificationRequested {
        #[serde(flatten)]
        verification: &'a PendingVerification,
    },
    /// To the customer: the agent asked for a verification but the code email could not be
    /// sent. With `challenge`, a resend failed and that challenge's earlier code still works.
    VerificationUnavailable {
        ticket: TicketId,
        action: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        challenge: Option<i64>,
        reason: &'static str,
    },
    /// To staff following the ticket: a challenge's state; `approved` with `verified_until`
    /// is the verified badge.
    Verification {
        #[serde(flatten)]
        verification: &'a crate::stepup::VerificationView,
    },
    /// To the customer, in reply to `verify`.
    VerificationResult {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        challenge: i64,
        state: verify::ChallengeState,
        attempts_left: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        verified_until: Option<Timestamp>,
    },
    /// To supervisors and admins: something that needs a person's attention.
    SecurityAlert {
        kind: &'a str,
        level: crate::anomaly::Level,
        #[serde(skip_serializing_if = "Option::is_none")]
        actor: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ticket: Option<TicketId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        customer: Option<crate::ids::CustomerId>,
        at: Timestamp,
        message: &'a str,
    },
    /// To staff: a new ticket's first message asks for something risky; verify first.
    StepUpFlag {
        ticket: TicketId,
        phrase: &'a str,
    },
}

impl ServerFrame<'_> {
    pub fn encode(&self) -> Arc<str> {
        // These types serialise infallibly (no maps with non-string keys, no foreign impls).
        serde_json::to_string(self)
            .unwrap_or_else(|_| {
                r#"{"type":"error","code":"invalid_frame","message":"encoding failed"}"#.into()
            })
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_frames_and_keeps_ref() {
        let f = parse_frame(r#"{"type":"send","ref":"r1","client_id":"c1","text":"hi"}"#).unwrap();
        assert_eq!(f.reference.as_deref(), Some("r1"));
        assert!(matches!(f.frame, ClientFrame::Send { ref text, .. } if text == "hi"));
        let f = parse_frame(r#"{"type":"ping"}"#).unwrap();
        assert!(matches!(f.frame, ClientFrame::Ping));
    }

    #[test]
    fn classifies_bad_frames() {
        assert_eq!(
            parse_frame("{nope").unwrap_err().code,
            ErrorCode::InvalidFrame
        );
        assert_eq!(
            parse_frame("[1,2]").unwrap_err().code,
            ErrorCode::InvalidFrame
        );
        assert_eq!(
            parse_frame(r#"{"text":"x"}"#).unwrap_err().code,
            ErrorCode::InvalidFrame
        );
        let e = parse_frame(r#"{"type":"teleport","ref":"9"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.reference.as_deref()),
            (ErrorCode::UnknownType, Some("9"))
        );
        let e = parse_frame(r#"{"type":"send","client_id":"c"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidFrame);
        assert!(e.message.contains("missing field `text`"), "{}", e.message);
    }

    #[test]
    fn errors_never_quote_the_frame() {
        let e =
            parse_frame(r#"{"type":"send","client_id":"c","text":4111111111111111}"#).unwrap_err();
        assert!(!e.message.contains("4111"), "{}", e.message);
    }

    #[test]
    fn text_and_client_id_rules() {
        assert!(MessageText::parse("   ".into()).is_err());
        assert!(MessageText::parse("x".repeat(8001)).is_err());
        assert!(MessageText::parse("ж".repeat(8000)).is_ok());
        assert!(ClientId::parse(String::new()).is_err());
        assert!(ClientId::parse("a".repeat(65)).is_err());
        assert!(ClientId::parse("a\nb".into()).is_err());
        assert!(ClientId::parse("5f1c-uuid".into()).is_ok());
    }
}
