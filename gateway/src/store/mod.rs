//! The durable store seam: tickets, conversations, users, sessions, customers.
//!
//! [`Store`] is the one trait the rest of the gateway talks to; [`sqlite::SqliteStore`] is the
//! embedded default and [`postgres::PgStore`] the one many nodes share ([`open`] picks one from
//! the configuration). Every operation that changes a ticket is one transaction, and every
//! authorisation that depends on a ticket's state (who it is assigned to) is checked inside it,
//! so two racing requests can never both succeed.

pub mod access;
mod appender;
pub mod model;
pub mod postgres;
mod rows;
mod rules;
pub mod sqlite;

pub use access::*;
pub use model::*;

use crate::clock::Timestamp;
use crate::ids::{ConversationId, CustomerId, GrantId, Seq, TicketId, UserId};
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The object is not in a state that allows the change (already claimed, resolved, …).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The agent has as many open tickets as their capacity allows.
    #[error("at capacity")]
    Capacity,
    /// The caller may not do this to this object.
    #[error("forbidden")]
    Forbidden,
    /// The database could not be reached, was locked for too long, or is full.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A ticket after a change of state, and the system message that records it in the
/// conversation ("Grace joined the conversation").
#[derive(Clone, Debug)]
pub struct Transition {
    pub ticket: Ticket,
    pub message: Message,
}

/// A message to append; the store assigns its sequence number.
#[derive(Clone, Debug)]
pub struct NewMessage<'a> {
    pub author: Author,
    pub text: &'a str,
    pub client_id: &'a str,
    /// `text` is the placeholder for a message the card-number screen withheld.
    pub blocked: bool,
    /// A file the message carries; `text` is then its sanitised name.
    pub attachment: Option<&'a NewAttachment>,
}

/// What the store keeps under a retention policy of its own (`recorder::retention`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retained {
    /// A closed ticket's conversation (`conversation:<id>`), by ticket id; ends at closing.
    Transcript,
    /// A customer's record (`customer:<id>`: name, email, phone, external id), by customer
    /// id; ends at the customer's last activity (ticket closed, widget session started).
    Customer,
    /// A call recording (`recording:<id>`: its audio and manifest), by recording id; ends when
    /// the call ends; held while its ticket's conversation is.
    Recording,
}

impl Retained {
    /// The kind's name in `recorder::retention`.
    pub fn policy(self) -> &'static str {
        match self {
            Retained::Transcript => recorder::retention::TRANSCRIPT,
            Retained::Customer => recorder::retention::CUSTOMER,
            Retained::Recording => recorder::retention::RECORDING,
        }
    }
}

/// An object whose retention may have run out: when it ended and whether it is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionCandidate {
    pub id: i64,
    pub ended_at: Timestamp,
    /// A legal hold on it (for a customer: on any of their transcripts).
    pub legal_hold: bool,
}

/// An object whose data key retention destroyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shredded {
    pub kind: Retained,
    /// The ticket (transcripts) or the customer (customer records).
    pub id: i64,
    /// The transcript's conversation.
    pub conversation: Option<ConversationId>,
    /// Whose data it was.
    pub customer: CustomerId,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap liveness probe for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    // --- staff -----------------------------------------------------------------------------
    async fn create_user(&self, user: NewUser, now: Timestamp) -> StoreResult<User>;
    async fn user(&self, id: UserId) -> StoreResult<User>;
    /// The user and their password hash, for login.
    async fn user_credentials(&self, username: &str) -> StoreResult<(User, String)>;
    async fn users(&self) -> StoreResult<Vec<User>>;
    async fn update_user(&self, id: UserId, patch: UserPatch) -> StoreResult<User>;
    async fn count_users(&self) -> StoreResult<i64>;

    async fn create_session(
        &self,
        token_hash: &[u8],
        user: UserId,
        now: Timestamp,
        expires: Timestamp,
    ) -> StoreResult<()>;
    /// The active user owning an unexpired session that was used within `idle` (if given);
    /// marks the session used.
    async fn session_user(
        &self,
        token_hash: &[u8],
        now: Timestamp,
        idle: Option<std::time::Duration>,
    ) -> StoreResult<User>;
    async fn delete_session(&self, token_hash: &[u8]) -> StoreResult<()>;
    async fn delete_user_sessions(&self, user: UserId) -> StoreResult<()>;

    // --- customers -------------------------------------------------------------------------
    /// Creates the customer, or for a verified identity already known, updates and returns it.
    async fn upsert_customer(&self, c: NewCustomer, now: Timestamp) -> StoreResult<Customer>;
    async fn customer(&self, id: CustomerId) -> StoreResult<Customer>;
    async fn create_visitor(
        &self,
        token_hash: &[u8],
        customer: CustomerId,
        now: Timestamp,
        expires: Timestamp,
    ) -> StoreResult<()>;
    async fn visitor_customer(&self, token_hash: &[u8], now: Timestamp) -> StoreResult<Customer>;

    // --- tickets and messages --------------------------------------------------------------
    /// The customer's current ticket: open, or resolved no earlier than `reopen_after`.
    async fn current_ticket(
        &self,
        customer: CustomerId,
        reopen_after: Timestamp,
    ) -> StoreResult<Option<Ticket>>;

    /// Appends a customer message to their current ticket, reopening a resolved one resolved
    /// no earlier than `reopen_after`, or opening a new ticket. `open` is the ticket and
    /// conversation the caller believes open, which lets the common case be one statement.
    async fn append_customer_message(
        &self,
        customer: &Customer,
        open: Option<(TicketId, ConversationId)>,
        msg: NewMessage<'_>,
        now: Timestamp,
        reopen_after: Timestamp,
    ) -> StoreResult<Appended>;

    /// Appends an agent's reply; the ticket must be assigned to that agent.
    async fn append_agent_message(
        &self,
        ticket: TicketId,
        agent: UserId,
        msg: NewMessage<'_>,
        now: Timestamp,
    ) -> StoreResult<Appended>;

    async fn messages_after(
        &self,
        conversation: ConversationId,
        after: Seq,
        limit: i64,
    ) -> StoreResult<Vec<Message>>;

    /// A stored attachment with the key that opens it (none once shredded).
    async fn attachment(&self, id: crate::ids::AttachmentId) -> StoreResult<StoredAttachment>;
    /// `len` bytes of an attachment's sealed content from `offset` (fewer at its end).
    async fn attachment_bytes(
        &self,
        id: crate::ids::AttachmentId,
        offset: u64,
        len: u64,
    ) -> StoreResult<Vec<u8>>;

    async fn ticket(&self, id: TicketId) -> StoreResult<Ticket>;
    async fn ticket_by_conversation(&self, id: ConversationId) -> StoreResult<Ticket>;
    async fn tickets(&self, filter: TicketFilter) -> StoreResult<Vec<Ticket>>;
    /// Queued tickets, most urgent and longest waiting first.
    async fn queue(&self, limit: i64) -> StoreResult<Vec<Ticket>>;

    /// Assigns a queued ticket to an agent below their capacity.
    async fn claim(
        &self,
        ticket: TicketId,
        agent: UserId,
        now: Timestamp,
    ) -> StoreResult<Transition>;
    /// Moves a ticket from `from` to another agent (within capacity) or back to the queue.
    async fn transfer(
        &self,
        ticket: TicketId,
        from: UserId,
        to: Option<UserId>,
        now: Timestamp,
    ) -> StoreResult<Transition>;
    async fn resolve(
        &self,
        ticket: TicketId,
        agent: UserId,
        now: Timestamp,
    ) -> StoreResult<Transition>;
    /// Closes tickets resolved before `before`; returns them.
    async fn close_resolved(&self, before: Timestamp, now: Timestamp) -> StoreResult<Vec<Ticket>>;
    async fn set_priority(&self, ticket: TicketId, priority: Priority) -> StoreResult<Ticket>;
    async fn mark_read(
        &self,
        conversation: ConversationId,
        by: AuthorKind,
        seq: Seq,
    ) -> StoreResult<Seq>;

    async fn add_note(
        &self,
        ticket: TicketId,
        author: UserId,
        client_id: &str,
        text: &str,
        now: Timestamp,
    ) -> StoreResult<(Note, bool)>;
    async fn notes(&self, ticket: TicketId) -> StoreResult<Vec<Note>>;

    async fn queue_stats(&self, now: Timestamp) -> StoreResult<QueueStats>;

    // --- settings --------------------------------------------------------------------------
    async fn setting(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;
    async fn put_setting(&self, name: &str, value: &[u8]) -> StoreResult<()>;
    /// Deletes the setting if it holds `value`; true if it did (used for one-time secrets).
    async fn take_setting(&self, name: &str, value: &[u8]) -> StoreResult<bool>;

    // --- step-up verification (verify crate) -------------------------------------------------
    /// Challenges, failure counters and staff second factors: the verification state seam.
    fn verification(&self) -> &dyn verify::VerificationStore;
    /// Marks a ticket whose first message matched a risk phrase; the first flag stays.
    async fn flag_for_step_up(
        &self,
        ticket: TicketId,
        phrase: &str,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// The risk phrase a ticket was flagged for, if any.
    async fn step_up_flag(&self, ticket: TicketId) -> StoreResult<Option<String>>;
    /// The flagged ones of these tickets, with their phrase, in one read.
    async fn step_up_flags(&self, tickets: &[TicketId]) -> StoreResult<Vec<(TicketId, String)>>;
    /// A session that opens only the second-factor enrolment endpoints (a user whose role
    /// requires a second factor and who has none yet); `session_user` never accepts it.
    async fn create_enrolment_session(
        &self,
        token_hash: &[u8],
        user: UserId,
        now: Timestamp,
        expires: Timestamp,
    ) -> StoreResult<()>;
    /// The user of an unexpired session of either kind.
    async fn enrolling_user(&self, token_hash: &[u8], now: Timestamp) -> StoreResult<User>;

    // --- audit log (recorder::audit) --------------------------------------------------------
    /// Appends an entry at the end of the hash chain: reads the head, hashes, inserts, in one
    /// transaction of the single writer, so the chain has one order.
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<AuditRecord>;
    /// Records in log order with `seq > after`, at most `limit` (verification, export).
    async fn audit_after(&self, after: i64, limit: i64) -> StoreResult<Vec<AuditRecord>>;
    /// Records matching the filter, newest first.
    async fn audit_search(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>>;
    /// The last entry's number and hash.
    async fn audit_head(&self) -> StoreResult<Option<(i64, ChainHash)>>;
    /// Stores a signed checkpoint if the last stored one is still at `after` (`None`: there is
    /// none yet); false when another signer stored one meanwhile. Checkpoints chain to the one
    /// before them, so two signers must never both extend the same one.
    async fn add_audit_checkpoint(
        &self,
        checkpoint: &AuditCheckpoint,
        after: Option<i64>,
    ) -> StoreResult<bool>;
    /// Every signed checkpoint, by ascending `seq`.
    async fn audit_checkpoints(&self) -> StoreResult<Vec<AuditCheckpoint>>;

    // --- access grants (recorder::grant) ----------------------------------------------------
    async fn create_grant(&self, grant: NewGrant) -> StoreResult<StoredGrant>;
    async fn grant(&self, id: GrantId) -> StoreResult<StoredGrant>;
    async fn grants(&self, filter: GrantFilter) -> StoreResult<Vec<StoredGrant>>;
    /// Applies the change if the grant is still in `change.from`; `Conflict` otherwise.
    async fn change_grant(&self, id: GrantId, change: GrantChange) -> StoreResult<StoredGrant>;
    /// Grants the clock has expired but the store has not: pending past `review_by`,
    /// approved past `expires_at`.
    async fn due_grants(&self, now: Timestamp) -> StoreResult<Vec<StoredGrant>>;

    // --- vault -----------------------------------------------------------------------------
    /// Objects of `kind` that ended before `ended_before` and still have their data key, at
    /// most `limit`, those without a legal hold first: the retention sweep decides on them.
    async fn retention_candidates(
        &self,
        kind: Retained,
        ended_before: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<RetentionCandidate>>;
    /// Crypto-shreds these objects of `kind`: their data keys are destroyed and their sealed
    /// rows become unreadable. One that is held, or active again since `ended_before`, is
    /// skipped (checked in the same transaction). Returns what was shredded.
    async fn shred(
        &self,
        kind: Retained,
        ids: &[i64],
        ended_before: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Vec<Shredded>>;
    /// The data key of `owner` (e.g. `user:<id>` for a staff TOTP seed), created and stored
    /// wrapped by the keyring when it has none and `create` is set; `None` when it has none.
    async fn data_key(
        &self,
        owner: &crate::vault::KeyOwner,
        create: bool,
        now: Timestamp,
    ) -> StoreResult<Option<std::sync::Arc<recorder::DataKey>>>;
    /// Replaces a staff user's sealed TOTP seed if it is still `old` (seeds sealed the old way
    /// are sealed again at start-up); false when it changed meanwhile.
    async fn reseal_totp_seed(&self, user: UserId, old: &[u8], new: &[u8]) -> StoreResult<bool>;
    /// Puts a ticket's transcript on legal hold, or releases it.
    async fn set_legal_hold(&self, ticket: TicketId, hold: bool) -> StoreResult<()>;

    // --- calls and recordings ----------------------------------------------------------------
    /// Marks a ticket as a call's.
    async fn mark_call(&self, ticket: TicketId) -> StoreResult<()>;
    /// A new recording of a call on `ticket`, with its data key (stored wrapped in the same
    /// transaction). A `call_id` recorded before is a conflict.
    async fn create_recording(
        &self,
        ticket: TicketId,
        call_id: &str,
        rate: u32,
        now: Timestamp,
    ) -> StoreResult<(i64, std::sync::Arc<recorder::DataKey>)>;
    /// Stores the sealed manifest after a segment, or with the final entry (`ended`).
    async fn update_recording(
        &self,
        id: i64,
        manifest: &[u8],
        segments: i64,
        frames: i64,
        state: RecordingState,
        ended: Option<Timestamp>,
    ) -> StoreResult<()>;
    async fn recording(&self, id: i64) -> StoreResult<StoredRecording>;
    /// Whether a call with this id was ever recorded (a replayed stream is refused before it
    /// opens a ticket).
    async fn call_recorded(&self, call_id: &str) -> StoreResult<bool>;
    async fn ticket_recordings(&self, ticket: TicketId) -> StoreResult<Vec<StoredRecording>>;
}

/// Bookkeeping of the data keys for `deskgate keys`, beside the [`Store`] the gateway uses.
#[async_trait]
pub trait KeyAdmin: Store {
    /// How many data keys each keyring version wraps.
    async fn data_keys_by_version(&self) -> StoreResult<Vec<(recorder::KeyVersion, i64)>>;
    /// Owners whose data key is still wrapped by `version` (at most `limit` of them).
    async fn data_key_owners(
        &self,
        version: recorder::KeyVersion,
        limit: i64,
    ) -> StoreResult<Vec<String>>;
    /// Re-wraps every data key to the keyring's current version; returns how many moved.
    async fn rewrap_data_keys(&self) -> StoreResult<u64>;
    fn into_store(self: std::sync::Arc<Self>) -> std::sync::Arc<dyn Store>;
}

macro_rules! key_admin {
    ($t:ty) => {
        #[async_trait]
        impl KeyAdmin for $t {
            async fn data_keys_by_version(&self) -> StoreResult<Vec<(recorder::KeyVersion, i64)>> {
                <$t>::data_keys_by_version(self).await
            }
            async fn data_key_owners(
                &self,
                version: recorder::KeyVersion,
                limit: i64,
            ) -> StoreResult<Vec<String>> {
                <$t>::data_key_owners(self, version, limit).await
            }
            async fn rewrap_data_keys(&self) -> StoreResult<u64> {
                <$t>::rewrap_data_keys(self).await
            }
            fn into_store(self: std::sync::Arc<Self>) -> std::sync::Arc<dyn Store> {
                self
            }
        }
    };
}
key_admin!(sqlite::SqliteStore);
key_admin!(postgres::PgStore);

/// Opens the configured store sealing with `vault`: SQLite under the data dir, or the
/// PostgreSQL database of `--database-url`; either way its schema is brought up to date.
pub async fn open(
    config: &crate::config::Config,
    vault: std::sync::Arc<crate::vault::Vault>,
) -> StoreResult<std::sync::Arc<dyn KeyAdmin>> {
    use secrecy::ExposeSecret;
    Ok(match &config.database {
        crate::config::Database::Sqlite => std::sync::Arc::new(
            sqlite::SqliteStore::open_with_vault(&config.data, config.store_busy_timeout, vault)
                .await?,
        ),
        crate::config::Database::Postgres(url) => std::sync::Arc::new(
            postgres::PgStore::connect(url.expose_secret(), config.store_busy_timeout, vault)
                .await?,
        ),
    })
}
