//! What the store holds, as the rest of the gateway sees it.

use crate::auth::Permission;
use crate::clock::Timestamp;
use crate::ids::{AttachmentId, ConversationId, CustomerId, NoteId, Seq, TicketId, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Staff roles. Customers are not users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Lead,
    Supervisor,
    Approver,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Lead => "lead",
            Role::Supervisor => "supervisor",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// May see every ticket, not only queued ones and their own (see [`Permission`]).
    pub fn sees_all_tickets(self) -> bool {
        self.can(Permission::ReadAllTickets)
    }

    /// May create users and change roles.
    pub fn manages_users(self) -> bool {
        self.can(Permission::ManageUsers)
    }

    /// Works tickets: claims, replies, resolves.
    pub fn works_tickets(self) -> bool {
        self.can(Permission::WorkTickets)
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "agent" => Role::Agent,
            "lead" => Role::Lead,
            "supervisor" => Role::Supervisor,
            "approver" => Role::Approver,
            "admin" => Role::Admin,
            other => return Err(format!("unknown role {other:?}")),
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub name: String,
    pub role: Role,
    pub capacity: u32,
    pub active: bool,
    pub created_at: Timestamp,
}

/// A user to create; the password is already hashed.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub capacity: u32,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub capacity: Option<u32>,
    pub active: Option<bool>,
    pub password_hash: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Customer {
    pub id: CustomerId,
    pub site: String,
    pub external_id: Option<String>,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub verified: bool,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug)]
pub struct NewCustomer {
    pub site: String,
    pub external_id: Option<String>,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub verified: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TicketStatus {
    Queued,
    Assigned,
    Resolved,
    Closed,
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Queued => "queued",
            TicketStatus::Assigned => "assigned",
            TicketStatus::Resolved => "resolved",
            TicketStatus::Closed => "closed",
        }
    }
}

impl FromStr for TicketStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => TicketStatus::Queued,
            "assigned" => TicketStatus::Assigned,
            "resolved" => TicketStatus::Resolved,
            "closed" => TicketStatus::Closed,
            other => return Err(format!("unknown ticket status {other:?}")),
        })
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

impl FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "low" => Priority::Low,
            "normal" => Priority::Normal,
            "high" => Priority::High,
            "urgent" => Priority::Urgent,
            other => return Err(format!("unknown priority {other:?}")),
        })
    }
}

/// The customer as shown on a ticket.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerRef {
    pub id: CustomerId,
    pub name: String,
    pub verified: bool,
}

/// The agent as shown on a ticket.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AgentRef {
    pub id: UserId,
    pub name: String,
}

/// How a ticket began: a chat message or a call (a call's ticket still carries chat).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TicketKind {
    Chat,
    Call,
}

impl FromStr for TicketKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "chat" => Ok(TicketKind::Chat),
            "call" => Ok(TicketKind::Call),
            other => Err(format!("unknown ticket kind {other:?}")),
        }
    }
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Ticket {
    pub id: TicketId,
    pub conversation: ConversationId,
    pub kind: TicketKind,
    pub status: TicketStatus,
    pub priority: Priority,
    pub subject: String,
    pub customer: CustomerRef,
    pub agent: Option<AgentRef>,
    pub created_at: Timestamp,
    pub queued_at: Timestamp,
    pub first_response_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub last_seq: Seq,
    pub customer_read_seq: Seq,
    pub agent_read_seq: Seq,
}

impl Ticket {
    pub fn is_open(&self) -> bool {
        matches!(self.status, TicketStatus::Queued | TicketStatus::Assigned)
    }

    /// The ticket as it may be shown outside an access grant: a closed ticket's subject (the
    /// first line the customer typed) is part of its transcript, so it is left empty.
    pub fn outside_grant(mut self) -> Ticket {
        if self.status == TicketStatus::Closed {
            self.subject = String::new();
        }
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthorKind {
    Customer,
    Agent,
    System,
}

impl AuthorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorKind::Customer => "customer",
            AuthorKind::Agent => "agent",
            AuthorKind::System => "system",
        }
    }
}

impl FromStr for AuthorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "customer" => AuthorKind::Customer,
            "agent" => AuthorKind::Agent,
            "system" => AuthorKind::System,
            other => return Err(format!("unknown author kind {other:?}")),
        })
    }
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Author {
    pub kind: AuthorKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Message {
    pub conversation: ConversationId,
    pub seq: Seq,
    pub at: Timestamp,
    pub from: Author,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The card-number screen withheld what was typed; `text` is a placeholder.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub blocked: bool,
    /// The file this message carries; `text` is then its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentRef>,
}

/// A file as both sides of a conversation see it in the message that carries it; the content
/// is fetched apart (`GET /api/attachments/{id}`).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AttachmentRef {
    pub id: AttachmentId,
    /// The sanitised file name (the same as the message's text).
    pub name: String,
    /// One of the allowed types, matching the file's first bytes.
    pub content_type: String,
    /// Bytes of the file.
    pub size: u64,
}

/// A file to store with the message that carries it, already checked (type, size, card
/// numbers). Its clear bytes are wiped when it is dropped and never printed.
pub struct NewAttachment {
    pub content_type: &'static str,
    pub bytes: zeroize::Zeroizing<Vec<u8>>,
}

impl fmt::Debug for NewAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAttachment")
            .field("content_type", &self.content_type)
            .field("size", &self.bytes.len())
            .finish()
    }
}

/// A stored attachment as the download reads it: where its sealed content is and the key
/// that opens it (`None` once retention destroyed the conversation's data key).
#[derive(Clone)]
pub struct StoredAttachment {
    pub id: AttachmentId,
    pub conversation: ConversationId,
    pub seq: Seq,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    /// Bytes of the sealed content as stored.
    pub sealed_len: u64,
    pub key: Option<std::sync::Arc<recorder::DataKey>>,
}

impl fmt::Debug for StoredAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredAttachment")
            .field("id", &self.id)
            .field("conversation", &self.conversation)
            .field("size", &self.size)
            .finish()
    }
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Note {
    pub id: NoteId,
    pub ticket: TicketId,
    pub at: Timestamp,
    pub author: AgentRef,
    pub text: String,
    pub client_id: String,
}

/// Result of appending a message.
#[derive(Clone, Debug)]
pub struct Appended {
    pub ticket: TicketId,
    /// The message as stored (for a duplicate, the one stored first).
    pub message: Message,
    /// The same client id was already stored; `message` is the earlier one.
    pub duplicate: bool,
    /// Set when the message changed the ticket's state: opened it or reopened it.
    pub change: Option<TicketChange>,
}

#[derive(Clone, Debug)]
pub enum TicketChange {
    /// The message opened a new ticket.
    Opened(Ticket),
    /// The message reopened a resolved ticket (back to the queue).
    Reopened(Ticket),
}

/// Queue figures for dashboards and metrics.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    pub queued: i64,
    pub assigned: i64,
    pub resolved: i64,
    /// Milliseconds the longest-waiting queued ticket has waited.
    pub longest_wait_ms: i64,
}

/// Which tickets to list.
#[derive(Clone, Debug, Default)]
pub struct TicketFilter {
    pub status: Option<TicketStatus>,
    pub agent: Option<UserId>,
    pub customer: Option<CustomerId>,
    pub limit: i64,
}

/// Where a call's recording stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordingState {
    /// The call is going on; the manifest has no final entry yet.
    Recording,
    /// The call ended and the final entry is written.
    Finished,
    /// Writing stopped on an error; what was written stays, without a final entry.
    Failed,
}

impl RecordingState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingState::Recording => "recording",
            RecordingState::Finished => "finished",
            RecordingState::Failed => "failed",
        }
    }
}

impl FromStr for RecordingState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "recording" => Ok(RecordingState::Recording),
            "finished" => Ok(RecordingState::Finished),
            "failed" => Ok(RecordingState::Failed),
            other => Err(format!("unknown recording state {other:?}")),
        }
    }
}

/// A recording's row: its layout and sealed manifest, never audio.
#[derive(Clone, Debug)]
pub struct StoredRecording {
    pub id: i64,
    pub ticket: TicketId,
    pub call_id: String,
    pub rate: u32,
    pub state: RecordingState,
    /// The manifest sealed with the recording's key (record seq = `segments`).
    pub manifest: Option<Vec<u8>>,
    pub segments: i64,
    pub frames: i64,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
}
