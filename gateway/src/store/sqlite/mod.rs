//! The embedded store: one SQLite file under the data dir, in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so transactions on this node never
//! contend with each other and a read-then-write inside one is never interleaved; reads use a
//! separate pool of read-only connections that WAL lets run beside the writer. The common
//! append — a message to an open ticket — is one statement, and such appends are committed in
//! groups ([`appender`]).

mod appender;
mod audit;
mod recording;
pub use audit::AuditReader;
mod vault;
mod verification;

use super::appender::{Appender, Target};
use super::rows::*;
use super::rules::*;
use super::*;
use crate::clock::Clock;
use crate::vault::{self as sealing, KeyOwner, Vault};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};

pub struct SqliteStore {
    /// Seals what customers typed before it is written and opens it on read.
    vault: Arc<Vault>,
    writer: SqlitePool,
    reader: SqlitePool,
    appender: Appender,
    /// Stops the checkpointer when the store is dropped.
    _stop_checkpoints: DropGuard,
}

/// When the write-ahead log is copied back into the database file, and when it starts over.
#[derive(Clone, Copy)]
struct Checkpoints {
    /// How often the log is copied back.
    every: Duration,
    /// Size of the log past which the next checkpoint makes it start over.
    restart_bytes: u64,
}

const CHECKPOINTS: Checkpoints = Checkpoints {
    every: Duration::from_secs(1),
    restart_bytes: WAL_RESTART_BYTES,
};
const WAL_RESTART_BYTES: u64 = 64 * 1024 * 1024;

/// Set by the checkpointer when the write-ahead log should start over; taken by the writer.
type RestartDue = Arc<AtomicBool>;

/// Copies committed pages from the WAL into the database beside the writer.
///
/// A passive checkpoint never blocks the writer, but under constant writes it never lets the
/// log start over either, so the file would grow without end. Once the log passes
/// [`Checkpoints::restart_bytes`] it has to start over, which takes a restart checkpoint: a
/// moment with no writer. Run from this connection, it would make the writer meet a busy lock
/// and sleep in SQLite's busy handler, whose back-off (1, 2, 5, 10, 15, 20 … ms) outlasts the
/// pause itself. So it is handed to the writer ([`RestartDue`]), which runs it between two
/// transactions and waits only as long as the checkpoint takes. Should the writer not take it
/// by the next tick (nothing is being written), it is run here.
///
/// What the writer waits for is the copying of every frame committed since the last passive
/// pass began, and a sync of each file. A pass over a full log takes tens of milliseconds, in
/// which the writer commits hundreds of frames more, so before the hand-over passes follow one
/// another ([`catch_up`]), each copying what came during the one before, until one finds
/// little new.
async fn checkpointer(
    pool: SqlitePool,
    restart: RestartDue,
    stop: CancellationToken,
    bounds: Checkpoints,
) {
    let page_size = match sqlx::query_scalar::<_, i64>("PRAGMA page_size")
        .fetch_one(&pool)
        .await
    {
        Ok(n) => u64::try_from(n).unwrap_or(4096),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the page size; taking 4096");
            4096
        }
    };
    let mut tick = tokio::time::interval(bounds.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if restart.swap(false, Ordering::AcqRel) {
            restart_log(&pool).await;
            continue;
        }
        let Some(frames) = passive(&pool).await else {
            continue;
        };
        if wal_bytes(frames, page_size) > bounds.restart_bytes
            && wal_bytes(catch_up(&pool, frames).await, page_size) > bounds.restart_bytes
        {
            restart.store(true, Ordering::Release);
        }
    }
}

/// Passes run back to back before a restart is handed to the writer, at most.
const CATCH_UP_PASSES: usize = 8;
/// A pass that found at most this many frames beyond the pass before it has left the writer
/// a batch or two to copy.
const CAUGHT_UP_FRAMES: i64 = 32;

/// Passive passes after one that found `frames` in the log, each copying what the writer
/// committed during the one before, until one finds at most [`CAUGHT_UP_FRAMES`] more; the
/// log's length after the last. A pass that copies the whole log with no commit beside it
/// lets the writer's next transaction start the log over by itself (SQLite does when a write
/// begins with every frame copied and no reader in the log); a pass that finds the log shorter
/// than before has seen that, and no restart is needed.
async fn catch_up(pool: &SqlitePool, mut frames: i64) -> i64 {
    for pass in 1..=CATCH_UP_PASSES {
        let Some(now) = passive(pool).await else {
            break;
        };
        let written = now - frames;
        frames = now;
        if written < 0 {
            tracing::debug!(passes = pass, "the log started over by itself");
            break;
        }
        if written <= CAUGHT_UP_FRAMES || pass == CATCH_UP_PASSES {
            tracing::debug!(passes = pass, written, "the log caught up");
            break;
        }
    }
    frames
}

/// One passive checkpoint; the log's length in frames. The log's file keeps its size when it
/// starts over, so only the frames written since tell how far it has grown.
async fn passive(pool: &SqlitePool) -> Option<i64> {
    let started = std::time::Instant::now();
    match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await
    {
        Ok((busy, frames, copied)) => {
            tracing::trace!(
                busy = busy != 0,
                frames,
                copied,
                micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                "passive checkpoint"
            );
            Some(frames)
        }
        Err(e) => {
            tracing::warn!(error = %e, "checkpoint failed");
            None
        }
    }
}

/// The bytes `frames` frames of the write-ahead log take: a 32-byte header, then each page
/// with a 24-byte frame header.
fn wal_bytes(frames: i64, page_size: u64) -> u64 {
    32 + u64::try_from(frames).unwrap_or(0) * (24 + page_size)
}

/// The writer's pool: one connection, which runs the restart `due` asks for as it leaves the
/// pool, before the transaction it is taken for.
fn writer_pool(due: RestartDue) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(1)
        .before_acquire(move |conn, _| {
            let due = due.swap(false, Ordering::AcqRel);
            Box::pin(async move {
                if due {
                    restart_log(conn).await;
                }
                Ok(true)
            })
        })
}

/// Copies what is left of the log into the database and makes the next commit write from the
/// log's start again. Logged at debug with the time it took, and `busy` when a reader still
/// held part of the log, so that it could not start over.
async fn restart_log<'c>(conn: impl sqlx::SqliteExecutor<'c>) {
    let started = std::time::Instant::now();
    match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(RESTART)")
        .fetch_one(conn)
        .await
    {
        Ok((busy, frames, _copied)) => tracing::debug!(
            busy = busy != 0,
            frames,
            micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "restart checkpoint"
        ),
        Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `deskgate.db` in `dir` with the keyring in `dir` (created on
    /// first run) and brings its schema up to date.
    pub async fn open(dir: &Path, busy_timeout: Duration) -> Result<SqliteStore, StoreError> {
        let vault = Vault::open(dir, None, crate::clock::SystemClock.now())
            .map_err(|e| StoreError::Unavailable(format!("keyring: {e}")))?;
        Self::open_with_vault(dir, busy_timeout, Arc::new(vault)).await
    }

    /// Opens the store sealing with `vault`.
    pub async fn open_with_vault(
        dir: &Path,
        busy_timeout: Duration,
        vault: Arc<Vault>,
    ) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        let path = dir.join("deskgate.db");
        let base = SqliteConnectOptions::new()
            .filename(&path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(busy_timeout)
            .foreign_keys(true)
            .pragma("journal_size_limit", (WAL_RESTART_BYTES * 2).to_string());
        // The writer never checkpoints: a checkpoint syncs the database file, and done inside a
        // commit it would stall every message behind it. `checkpointer` does it beside, and
        // hands the writer only the restart, which the connection runs as it leaves its pool:
        // between two transactions, whichever of the appender or another write takes it next.
        // Its page cache holds 64 MiB (SQLite's default is 2 MiB): with thousands of open
        // conversations each batch lands on leaves all over `messages` and `messages_client`,
        // and a leaf not cached is read back from the log or the file.
        let restart = RestartDue::default();
        let writer = writer_pool(restart.clone())
            .acquire_timeout(busy_timeout + Duration::from_secs(5))
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .pragma("wal_autocheckpoint", "0")
                    .pragma("cache_size", "-65536"),
            )
            .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        vault::seal_legacy_rows(&vault, &writer, crate::clock::SystemClock.now()).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(base.clone().read_only(true))
            .await?;
        let appender = appender::start(writer.clone(), vault.clone());
        let checkpoints = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base)
            .await?;
        let stop = CancellationToken::new();
        tokio::spawn(checkpointer(
            checkpoints,
            restart,
            stop.clone(),
            CHECKPOINTS,
        ));
        Ok(SqliteStore {
            vault,
            writer,
            reader,
            appender,
            _stop_checkpoints: stop.drop_guard(),
        })
    }
}

async fn ticket_in(
    vault: &Vault,
    conn: &mut SqliteConnection,
    id: TicketId,
) -> StoreResult<Ticket> {
    let row = sqlx::query(&format!("{TICKET_SELECT} WHERE t.id = ?"))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    ticket_from_row(vault, &row)
}

async fn user_in(conn: &mut SqliteConnection, id: UserId) -> StoreResult<User> {
    let row = sqlx::query(&format!("{USER_SELECT} WHERE id = ?"))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    user_from_row(&row)
}

/// A message already stored under this author's client id, if any.
async fn existing_message(
    vault: &Vault,
    conn: &mut SqliteConnection,
    kind: AuthorKind,
    author_id: Option<i64>,
    client_id: &str,
) -> StoreResult<Option<Message>> {
    let row = sqlx::query(&format!(
        "{MESSAGE_SELECT} WHERE author_kind = ? AND author_id IS ? AND client_id = ?"
    ))
    .bind(kind.as_str())
    .bind(author_id)
    .bind(client_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(|r| message_from_row(vault, r)).transpose()
}

/// Appends a message to a conversation under its next sequence number. `client_id` is the
/// sender's id for the message; system messages have none.
async fn insert_message(
    vault: &Vault,
    conn: &mut SqliteConnection,
    conversation: ConversationId,
    msg: &NewMessage<'_>,
    client_id: Option<&str>,
    now: Timestamp,
) -> StoreResult<Message> {
    let target = sqlx::query(TARGET_ANY)
        .bind(conversation.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    let sealed = seal_message(vault, &target, msg)?;
    insert_sealed(&sealed, msg, client_id, now)
        .execute(&mut *conn)
        .await?;
    let mut message = stored(sealed.conversation, sealed.seq, msg, client_id, now);
    if let Some(file) = msg.attachment {
        message.attachment =
            Some(insert_attachment(vault, conn, &target, &sealed, msg.text, file, now).await?);
    }
    Ok(message)
}

/// Stores a message's file, sealed with its conversation's data key as a STREAM whose
/// identity is (conversation, attachment id, `attachment`); the clear bytes never reach SQLite.
async fn insert_attachment(
    vault: &Vault,
    conn: &mut SqliteConnection,
    target: &SqliteRow,
    sealed: &SealedMessage,
    name: &str,
    file: &NewAttachment,
    now: Timestamp,
) -> StoreResult<AttachmentRef> {
    let owner = KeyOwner::conversation(sealed.conversation.0);
    let key = row_key(vault, target, &owner, "conv")?.ok_or(StoreError::Conflict(
        "the conversation's transcript was deleted",
    ))?;
    // The single writer runs this transaction: nothing else can take the id in between.
    let id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM attachments")
        .fetch_one(&mut *conn)
        .await?;
    let content = vault
        .seal_stream(&key, &owner, id, sealing::ATTACHMENT, &file.bytes)
        .map_err(vault_err)?;
    let size = i64::try_from(file.bytes.len())
        .map_err(|_| StoreError::Conflict("the file is too large"))?;
    sqlx::query(
        "INSERT INTO attachments (id, conversation_id, seq, content_type, size, content, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(sealed.conversation.0)
    .bind(sealed.seq.0)
    .bind(file.content_type)
    .bind(size)
    .bind(content)
    .bind(now.0)
    .execute(&mut *conn)
    .await?;
    Ok(AttachmentRef {
        id: crate::ids::AttachmentId(id),
        name: name.to_string(),
        content_type: file.content_type.to_string(),
        size: file.bytes.len() as u64,
    })
}

/// The conversation a message goes to, its last sequence number and its wrapped data key, read
/// by the single writer in the transaction that appends: the sequence number is part of the
/// sealed record's identity, so it must be known before sealing.
const TARGET_ANY: &str = "SELECT c.id, c.last_seq, dk.key_version AS conv_key_version, \
     dk.wrapped AS conv_key FROM conversations c \
     LEFT JOIN data_keys dk ON dk.owner = 'conversation:' || c.id WHERE c.id = ?";

/// The customer's conversation, if its ticket is still open.
const TARGET_CUSTOMER_OPEN: &str = "SELECT c.id, c.last_seq, dk.key_version AS conv_key_version, \
     dk.wrapped AS conv_key FROM conversations c JOIN tickets t ON t.id = c.ticket_id \
     LEFT JOIN data_keys dk ON dk.owner = 'conversation:' || c.id \
     WHERE c.id = ? AND c.ticket_id = ? AND t.customer_id = ? AND t.status IN ('queued', 'assigned')";

/// The conversation of a ticket assigned to this agent.
const TARGET_AGENT_HELD: &str = "SELECT c.id, c.last_seq, dk.key_version AS conv_key_version, \
     dk.wrapped AS conv_key FROM conversations c JOIN tickets t ON t.id = c.ticket_id \
     LEFT JOIN data_keys dk ON dk.owner = 'conversation:' || c.id \
     WHERE c.ticket_id = ? AND t.agent_id = ? AND t.status = 'assigned'";

/// Appends a sealed message; the triggers of migration 0003 advance the conversation's
/// `last_seq` and record the first response.
const INSERT_SEALED: &str = "INSERT INTO messages \
     (conversation_id, seq, at, author_kind, author_id, author_name, body, client_id, blocked) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// The statement that inserts a sealed message.
fn insert_sealed<'q>(
    sealed: &'q SealedMessage,
    msg: &NewMessage<'q>,
    client_id: Option<&'q str>,
    now: Timestamp,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    sqlx::query(INSERT_SEALED)
        .bind(sealed.conversation.0)
        .bind(sealed.seq.0)
        .bind(now.0)
        .bind(msg.author.kind.as_str())
        .bind(msg.author.id)
        .bind(&sealed.author)
        .bind(&sealed.body)
        .bind(client_id)
        .bind(msg.blocked)
}

/// Ends a change of a ticket's state: records it as a system message in the conversation,
/// commits, and returns the ticket as it now is.
async fn record_transition(
    vault: &Vault,
    mut tx: sqlx::Transaction<'_, sqlx::Sqlite>,
    conversation: ConversationId,
    ticket: TicketId,
    text: &str,
    now: Timestamp,
) -> StoreResult<Transition> {
    let msg = NewMessage {
        author: system_author(),
        text,
        client_id: "",
        blocked: false,
        attachment: None,
    };
    let message = insert_message(vault, &mut tx, conversation, &msg, None, now).await?;
    let ticket = ticket_in(vault, &mut tx, ticket).await?;
    tx.commit().await?;
    Ok(Transition { ticket, message })
}

/// Number of tickets assigned to the agent now.
async fn load_of(conn: &mut SqliteConnection, agent: UserId) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM tickets WHERE agent_id = ? AND status = 'assigned'",
    )
    .bind(agent.0)
    .fetch_one(&mut *conn)
    .await?)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn create_user(&self, u: NewUser, now: Timestamp) -> StoreResult<User> {
        let res = sqlx::query(
            "INSERT INTO users (username, name, role, password_hash, capacity, active, created_at) \
             VALUES (?, ?, ?, ?, ?, 1, ?) RETURNING id, username, name, role, capacity, active, created_at",
        )
        .bind(&u.username)
        .bind(&u.name)
        .bind(u.role.as_str())
        .bind(&u.password_hash)
        .bind(i64::from(u.capacity))
        .bind(now.0)
        .fetch_one(&self.writer)
        .await;
        match res {
            Ok(row) => user_from_row(&row),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict("username taken")),
            Err(e) => Err(e.into()),
        }
    }

    async fn user(&self, id: UserId) -> StoreResult<User> {
        let mut conn = self.reader.acquire().await?;
        user_in(&mut conn, id).await
    }

    async fn user_credentials(&self, username: &str) -> StoreResult<(User, String)> {
        let row = sqlx::query(
            "SELECT id, username, name, role, capacity, active, created_at, password_hash FROM users WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok((user_from_row(&row)?, row.try_get("password_hash")?))
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(&format!("{USER_SELECT} ORDER BY id"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn update_user(&self, id: UserId, p: UserPatch) -> StoreResult<User> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query(
            "UPDATE users SET name = COALESCE(?, name), role = COALESCE(?, role), \
             capacity = COALESCE(?, capacity), active = COALESCE(?, active), \
             password_hash = COALESCE(?, password_hash) WHERE id = ?",
        )
        .bind(p.name)
        .bind(p.role.map(Role::as_str))
        .bind(p.capacity.map(i64::from))
        .bind(p.active)
        .bind(p.password_hash)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let user = user_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn count_users(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.reader)
            .await?)
    }

    async fn create_session(
        &self,
        token_hash: &[u8],
        user: UserId,
        now: Timestamp,
        expires: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(token_hash)
            .bind(user.0)
            .bind(now.0)
            .bind(expires.0)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn session_user(
        &self,
        token_hash: &[u8],
        now: Timestamp,
        idle: Option<std::time::Duration>,
    ) -> StoreResult<User> {
        // Without an idle timeout every session counts as just used.
        let cutoff = idle.map_or(i64::MIN, |d| now.minus(d).0);
        let row = sqlx::query(
            "SELECT u.id, u.username, u.name, u.role, u.capacity, u.active, u.created_at, \
             COALESCE(s.last_seen_at, s.created_at) AS seen \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = ? AND s.expires_at > ? AND u.active = 1 AND s.enrolment_only = 0 \
             AND COALESCE(s.last_seen_at, s.created_at) > ?",
        )
        .bind(token_hash)
        .bind(now.0)
        .bind(cutoff)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound)?;
        let seen: i64 = row.try_get("seen")?;
        // One write a minute per session at most: enough for an idle timeout in minutes.
        if idle.is_some() && now.0 - seen > 60_000 {
            sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?")
                .bind(now.0)
                .bind(token_hash)
                .execute(&self.writer)
                .await?;
        }
        user_from_row(&row)
    }

    async fn delete_session(&self, token_hash: &[u8]) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn delete_user_sessions(&self, user: UserId) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(user.0)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn upsert_customer(&self, c: NewCustomer, now: Timestamp) -> StoreResult<Customer> {
        // Only a verified identity may be matched to an existing customer: an unverified claim
        // to be someone must never open that someone's history. The match is by blind index:
        // the external id itself is stored only sealed.
        let external_id = if c.verified { c.external_id } else { None };
        let ext_index = external_id
            .as_deref()
            .map(|e| self.vault.blind_index("customer.external_id", e));
        let email_index = c.email.as_deref().map(|e| {
            self.vault
                .blind_index("customer.email", &sealing::normal_email(e))
        });
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let existing: Option<i64> = match &ext_index {
            Some(index) => {
                sqlx::query_scalar(
                    "SELECT id FROM customers WHERE site = ? AND external_id_index = ?",
                )
                .bind(&c.site)
                .bind(index)
                .fetch_optional(&mut *tx)
                .await?
            }
            None => None,
        };
        let id = match existing {
            Some(id) => id,
            None => {
                sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM customers")
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        let owner = KeyOwner::customer(id);
        let key = match existing {
            Some(_) => vault::existing_key(&self.vault, &mut tx, &owner).await?,
            None => vault::create_key(&self.vault, &mut tx, &owner, now).await?,
        };
        let seal = |kind, text: &str| {
            self.vault
                .seal(&key, &owner, 0, kind, text)
                .map_err(vault_err)
        };
        let name = seal(sealing::CUSTOMER_NAME, &c.name)?;
        let email = c
            .email
            .as_deref()
            .map(|e| seal(sealing::CUSTOMER_EMAIL, e))
            .transpose()?;
        let phone = c
            .phone
            .as_deref()
            .map(|p| seal(sealing::CUSTOMER_PHONE, p))
            .transpose()?;
        let ext = external_id
            .as_deref()
            .map(|e| seal(sealing::CUSTOMER_EXTERNAL_ID, e))
            .transpose()?;
        if existing.is_some() {
            sqlx::query(
                "UPDATE customers SET name = ?, email = COALESCE(?, email), \
                 email_index = COALESCE(?, email_index), phone = COALESCE(?, phone), \
                 verified = ? WHERE id = ?",
            )
            .bind(name)
            .bind(email)
            .bind(email_index)
            .bind(phone)
            .bind(c.verified)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query(
                "INSERT INTO customers (id, site, external_id, name, email, phone, verified, \
                 created_at, external_id_index, email_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(&c.site)
            .bind(ext)
            .bind(name)
            .bind(email)
            .bind(phone)
            .bind(c.verified)
            .bind(now.0)
            .bind(ext_index)
            .bind(email_index)
            .execute(&mut *tx)
            .await?;
        }
        let row = sqlx::query(&format!("{CUSTOMER_SELECT} WHERE customers.id = ?"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        customer_from_row(&self.vault, &row)
    }

    async fn customer(&self, id: CustomerId) -> StoreResult<Customer> {
        let row = sqlx::query(&format!("{CUSTOMER_SELECT} WHERE customers.id = ?"))
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await?
            .ok_or(StoreError::NotFound)?;
        customer_from_row(&self.vault, &row)
    }

    async fn create_visitor(
        &self,
        token_hash: &[u8],
        customer: CustomerId,
        now: Timestamp,
        expires: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO visitors (token_hash, customer_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(token_hash)
            .bind(customer.0)
            .bind(now.0)
            .bind(expires.0)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn visitor_customer(&self, token_hash: &[u8], now: Timestamp) -> StoreResult<Customer> {
        let row = sqlx::query(
            "SELECT c.id, c.site, c.external_id, c.name, c.email, c.phone, c.verified, c.created_at, \
             dk.key_version AS cust_key_version, dk.wrapped AS cust_key \
             FROM visitors v JOIN customers c ON c.id = v.customer_id \
             LEFT JOIN data_keys dk ON dk.owner = 'customer:' || c.id \
             WHERE v.token_hash = ? AND v.expires_at > ?",
        )
        .bind(token_hash)
        .bind(now.0)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound)?;
        customer_from_row(&self.vault, &row)
    }

    async fn current_ticket(
        &self,
        customer: CustomerId,
        reopen_after: Timestamp,
    ) -> StoreResult<Option<Ticket>> {
        let row = sqlx::query(&format!(
            "{TICKET_SELECT} WHERE t.customer_id = ? AND (t.status IN ('queued','assigned') \
             OR (t.status = 'resolved' AND t.resolved_at >= ?)) ORDER BY t.id DESC LIMIT 1"
        ))
        .bind(customer.0)
        .bind(reopen_after.0)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref()
            .map(|r| ticket_from_row(&self.vault, r))
            .transpose()
    }

    async fn append_customer_message(
        &self,
        customer: &Customer,
        open: Option<(TicketId, ConversationId)>,
        msg: NewMessage<'_>,
        now: Timestamp,
        reopen_after: Timestamp,
    ) -> StoreResult<Appended> {
        if let Some((ticket, conversation)) = open.filter(|_| msg.attachment.is_none()) {
            let target = Target::OpenTicket {
                conversation,
                ticket,
                customer: customer.id,
            };
            if let Some((conversation, seq)) = self.appender.append(target, &msg, now).await? {
                return Ok(Appended {
                    ticket,
                    message: stored(conversation, seq, &msg, Some(msg.client_id), now),
                    duplicate: false,
                    change: None,
                });
            }
        }
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let author_id = Some(customer.id.0);
        if let Some(message) = existing_message(
            &self.vault,
            &mut tx,
            AuthorKind::Customer,
            author_id,
            msg.client_id,
        )
        .await?
        {
            let ticket = ticket_of_conversation(&self.vault, &mut tx, message.conversation).await?;
            return Ok(Appended {
                ticket: ticket.id,
                message,
                duplicate: true,
                change: None,
            });
        }
        let current = sqlx::query(
            "SELECT t.id, t.status, t.resolved_at, c.id AS conversation FROM tickets t \
             JOIN conversations c ON c.ticket_id = t.id \
             WHERE t.customer_id = ? AND t.status IN ('queued','assigned','resolved') \
             ORDER BY t.id DESC LIMIT 1",
        )
        .bind(customer.id.0)
        .fetch_optional(&mut *tx)
        .await?;
        let mut opened = false;
        let mut reopened = false;
        let mut target = None;
        if let Some(row) = current {
            let id = TicketId(row.try_get("id")?);
            let conversation = ConversationId(row.try_get("conversation")?);
            let status: TicketStatus = parse(row.try_get("status")?)?;
            let resolved_at: Option<i64> = row.try_get("resolved_at")?;
            match status {
                TicketStatus::Queued | TicketStatus::Assigned => target = Some((id, conversation)),
                TicketStatus::Resolved if resolved_at.unwrap_or(0) >= reopen_after.0 => {
                    sqlx::query(
                        "UPDATE tickets SET status = 'queued', agent_id = NULL, queued_at = ?, \
                         resolved_at = NULL, reopened = reopened + 1 WHERE id = ?",
                    )
                    .bind(now.0)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                    reopened = true;
                    target = Some((id, conversation));
                }
                _ => {
                    sqlx::query("UPDATE tickets SET status = 'closed', closed_at = ? WHERE id = ?")
                        .bind(now.0)
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        let (ticket_id, conversation) = match target {
            Some(t) => t,
            None => {
                opened = true;
                // The subject is sealed with the conversation's key, which needs the
                // conversation's id: the ticket starts with an empty one.
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO tickets (customer_id, status, priority, subject, created_at, queued_at) \
                     VALUES (?, 'queued', 'normal', X'', ?, ?) RETURNING id",
                )
                .bind(customer.id.0)
                .bind(now.0)
                .bind(now.0)
                .fetch_one(&mut *tx)
                .await?;
                let conv: i64 = sqlx::query_scalar(
                    "INSERT INTO conversations (ticket_id) VALUES (?) RETURNING id",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                let owner = KeyOwner::conversation(conv);
                let key = vault::create_key(&self.vault, &mut tx, &owner, now).await?;
                let subject = self
                    .vault
                    .seal(
                        &key,
                        &owner,
                        0,
                        sealing::TICKET_SUBJECT,
                        &subject_of(msg.text),
                    )
                    .map_err(vault_err)?;
                sqlx::query("UPDATE tickets SET subject = ? WHERE id = ?")
                    .bind(subject)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                (TicketId(id), ConversationId(conv))
            }
        };
        let message = insert_message(
            &self.vault,
            &mut tx,
            conversation,
            &msg,
            Some(msg.client_id),
            now,
        )
        .await?;
        let change = if opened {
            Some(TicketChange::Opened(
                ticket_in(&self.vault, &mut tx, ticket_id).await?,
            ))
        } else if reopened {
            Some(TicketChange::Reopened(
                ticket_in(&self.vault, &mut tx, ticket_id).await?,
            ))
        } else {
            None
        };
        tx.commit().await?;
        Ok(Appended {
            ticket: ticket_id,
            message,
            duplicate: false,
            change,
        })
    }

    async fn append_agent_message(
        &self,
        ticket: TicketId,
        agent: UserId,
        msg: NewMessage<'_>,
        now: Timestamp,
    ) -> StoreResult<Appended> {
        let target = Target::HeldTicket { ticket, agent };
        // A file is too large to wait in the group-commit queue; it takes the path below.
        if msg.attachment.is_none() {
            if let Some((conversation, seq)) = self.appender.append(target, &msg, now).await? {
                return Ok(Appended {
                    ticket,
                    message: stored(conversation, seq, &msg, Some(msg.client_id), now),
                    duplicate: false,
                    change: None,
                });
            }
        }
        // Not held by this agent, or the client id was used before: find out which.
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(message) = existing_message(
            &self.vault,
            &mut tx,
            AuthorKind::Agent,
            Some(agent.0),
            msg.client_id,
        )
        .await?
        {
            let t = ticket_of_conversation(&self.vault, &mut tx, message.conversation).await?;
            return Ok(Appended {
                ticket: t.id,
                message,
                duplicate: true,
                change: None,
            });
        }
        let current = ticket_in(&self.vault, &mut tx, ticket).await?;
        held_by(&current, agent)?;
        // Held after all (it changed hands in between): append now.
        let message = insert_message(
            &self.vault,
            &mut tx,
            current.conversation,
            &msg,
            Some(msg.client_id),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Appended {
            ticket,
            message,
            duplicate: false,
            change: None,
        })
    }

    async fn messages_after(
        &self,
        conversation: ConversationId,
        after: Seq,
        limit: i64,
    ) -> StoreResult<Vec<Message>> {
        let rows = sqlx::query(&format!(
            "{MESSAGE_SELECT} WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        ))
        .bind(conversation.0)
        .bind(after.0)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| message_from_row(&self.vault, r))
            .collect()
    }

    async fn attachment(&self, id: crate::ids::AttachmentId) -> StoreResult<StoredAttachment> {
        let r = sqlx::query(
            "SELECT a.id, a.conversation_id, a.seq, a.content_type, a.size, \
             length(a.content) AS sealed_len, m.body, \
             dk.key_version AS conv_key_version, dk.wrapped AS conv_key FROM attachments a \
             JOIN messages m ON m.conversation_id = a.conversation_id AND m.seq = a.seq \
             LEFT JOIN data_keys dk ON dk.owner = 'conversation:' || a.conversation_id \
             WHERE a.id = ?",
        )
        .bind(id.0)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound)?;
        let conversation = ConversationId(r.try_get("conversation_id")?);
        let seq: i64 = r.try_get("seq")?;
        let owner = KeyOwner::conversation(conversation.0);
        let key = row_key(&self.vault, &r, &owner, "conv")?;
        let body: Vec<u8> = r.try_get("body")?;
        let name = open_col(
            &self.vault,
            key.as_deref(),
            &owner,
            seq,
            sealing::MESSAGE_BODY,
            &body,
        )?;
        let size: i64 = r.try_get("size")?;
        let sealed_len: i64 = r.try_get("sealed_len")?;
        Ok(StoredAttachment {
            id,
            conversation,
            seq: Seq(seq),
            name,
            content_type: r.try_get("content_type")?,
            size: u64::try_from(size).unwrap_or(0),
            sealed_len: u64::try_from(sealed_len).unwrap_or(0),
            key,
        })
    }

    async fn attachment_bytes(
        &self,
        id: crate::ids::AttachmentId,
        offset: u64,
        len: u64,
    ) -> StoreResult<Vec<u8>> {
        // substr() on a BLOB counts bytes from 1; one segment is read at a time.
        let bytes: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT substr(content, ?, ?) FROM attachments WHERE id = ?")
                .bind(i64::try_from(offset).unwrap_or(i64::MAX).saturating_add(1))
                .bind(i64::try_from(len).unwrap_or(i64::MAX))
                .bind(id.0)
                .fetch_optional(&self.reader)
                .await?;
        bytes.ok_or(StoreError::NotFound)
    }

    async fn ticket(&self, id: TicketId) -> StoreResult<Ticket> {
        let mut conn = self.reader.acquire().await?;
        ticket_in(&self.vault, &mut conn, id).await
    }

    async fn ticket_by_conversation(&self, id: ConversationId) -> StoreResult<Ticket> {
        let mut conn = self.reader.acquire().await?;
        ticket_of_conversation(&self.vault, &mut conn, id).await
    }

    async fn tickets(&self, f: TicketFilter) -> StoreResult<Vec<Ticket>> {
        let rows = sqlx::query(&format!(
            "{TICKET_SELECT} WHERE (? IS NULL OR t.status = ?) AND (? IS NULL OR t.agent_id = ?) \
             AND (? IS NULL OR t.customer_id = ?) ORDER BY t.id DESC LIMIT ?"
        ))
        .bind(f.status.map(TicketStatus::as_str))
        .bind(f.status.map(TicketStatus::as_str))
        .bind(f.agent.map(|a| a.0))
        .bind(f.agent.map(|a| a.0))
        .bind(f.customer.map(|c| c.0))
        .bind(f.customer.map(|c| c.0))
        .bind(f.limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| ticket_from_row(&self.vault, r))
            .collect()
    }

    async fn queue(&self, limit: i64) -> StoreResult<Vec<Ticket>> {
        let rows = sqlx::query(&format!(
            "{TICKET_SELECT} WHERE t.status = 'queued' ORDER BY \
             CASE t.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END, \
             t.queued_at, t.id LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| ticket_from_row(&self.vault, r))
            .collect()
    }

    async fn claim(
        &self,
        ticket: TicketId,
        agent: UserId,
        now: Timestamp,
    ) -> StoreResult<Transition> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let current = ticket_in(&self.vault, &mut tx, ticket).await?;
        if current.status != TicketStatus::Queued {
            return Err(StoreError::Conflict("ticket is not queued"));
        }
        let user = user_in(&mut tx, agent).await?;
        if !user.active {
            return Err(StoreError::Forbidden);
        }
        if load_of(&mut tx, agent).await? >= i64::from(user.capacity) {
            return Err(StoreError::Capacity);
        }
        sqlx::query("UPDATE tickets SET status = 'assigned', agent_id = ? WHERE id = ? AND status = 'queued'")
            .bind(agent.0)
            .bind(ticket.0)
            .execute(&mut *tx)
            .await?;
        let text = format!("{} joined the conversation", user.name);
        record_transition(&self.vault, tx, current.conversation, ticket, &text, now).await
    }

    async fn transfer(
        &self,
        ticket: TicketId,
        from: UserId,
        to: Option<UserId>,
        now: Timestamp,
    ) -> StoreResult<Transition> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let current = ticket_in(&self.vault, &mut tx, ticket).await?;
        held_by(&current, from)?;
        let text = match to {
            Some(to) if to == from => return Err(StoreError::Conflict("ticket is already yours")),
            Some(to) => {
                let target = user_in(&mut tx, to).await?;
                if !target.active || !target.role.works_tickets() {
                    return Err(StoreError::Conflict("target cannot take tickets"));
                }
                if load_of(&mut tx, to).await? >= i64::from(target.capacity) {
                    return Err(StoreError::Capacity);
                }
                sqlx::query("UPDATE tickets SET agent_id = ? WHERE id = ?")
                    .bind(to.0)
                    .bind(ticket.0)
                    .execute(&mut *tx)
                    .await?;
                format!("The conversation was transferred to {}", target.name)
            }
            None => {
                sqlx::query(
                    "UPDATE tickets SET status = 'queued', agent_id = NULL, queued_at = ? WHERE id = ?",
                )
                .bind(now.0)
                .bind(ticket.0)
                .execute(&mut *tx)
                .await?;
                "The conversation is back in the queue; the next available agent will answer".into()
            }
        };
        record_transition(&self.vault, tx, current.conversation, ticket, &text, now).await
    }

    async fn resolve(
        &self,
        ticket: TicketId,
        agent: UserId,
        now: Timestamp,
    ) -> StoreResult<Transition> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let current = ticket_in(&self.vault, &mut tx, ticket).await?;
        held_by(&current, agent)?;
        sqlx::query("UPDATE tickets SET status = 'resolved', resolved_at = ? WHERE id = ?")
            .bind(now.0)
            .bind(ticket.0)
            .execute(&mut *tx)
            .await?;
        let text = "The conversation was marked resolved".to_string();
        record_transition(&self.vault, tx, current.conversation, ticket, &text, now).await
    }

    async fn close_resolved(&self, before: Timestamp, now: Timestamp) -> StoreResult<Vec<Ticket>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE tickets SET status = 'closed', closed_at = ? \
             WHERE status = 'resolved' AND resolved_at < ? RETURNING id",
        )
        .bind(now.0)
        .bind(before.0)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(ticket_in(&self.vault, &mut tx, TicketId(id)).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn set_priority(&self, ticket: TicketId, priority: Priority) -> StoreResult<Ticket> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query("UPDATE tickets SET priority = ? WHERE id = ?")
            .bind(priority.as_str())
            .bind(ticket.0)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let t = ticket_in(&self.vault, &mut tx, ticket).await?;
        tx.commit().await?;
        Ok(t)
    }

    async fn mark_read(
        &self,
        conversation: ConversationId,
        by: AuthorKind,
        seq: Seq,
    ) -> StoreResult<Seq> {
        let column = match by {
            AuthorKind::Customer => "customer_read_seq",
            AuthorKind::Agent => "agent_read_seq",
            AuthorKind::System => return Err(StoreError::Forbidden),
        };
        let v: i64 = sqlx::query_scalar(&format!(
            "UPDATE conversations SET {column} = MAX({column}, MIN(?, last_seq)) WHERE id = ? RETURNING {column}"
        ))
        .bind(seq.0)
        .bind(conversation.0)
        .fetch_optional(&self.writer)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(Seq(v))
    }

    async fn add_note(
        &self,
        ticket: TicketId,
        author: UserId,
        client_id: &str,
        text: &str,
        now: Timestamp,
    ) -> StoreResult<(Note, bool)> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT id FROM notes WHERE author_id = ? AND client_id = ?")
                .bind(author.0)
                .bind(client_id)
                .fetch_optional(&mut *tx)
                .await?;
        let (id, duplicate) = match existing {
            Some(id) => (id, true),
            None => {
                // The note's id is part of its sealed identity, so it is chosen before sealing;
                // the single writer makes MAX + 1 safe.
                let target = sqlx::query(
                    "SELECT c.id, (SELECT COALESCE(MAX(id), 0) + 1 FROM notes) AS next_id, \
                     dk.key_version AS conv_key_version, dk.wrapped AS conv_key \
                     FROM conversations c LEFT JOIN data_keys dk ON dk.owner = 'conversation:' || c.id \
                     WHERE c.ticket_id = ?",
                )
                .bind(ticket.0)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
                let id: i64 = target.try_get("next_id")?;
                let owner = KeyOwner::conversation(target.try_get::<i64, _>("id")?);
                let key = row_key(&self.vault, &target, &owner, "conv")?.ok_or(
                    StoreError::Conflict("the conversation's transcript was deleted"),
                )?;
                let body = self
                    .vault
                    .seal(&key, &owner, id, sealing::NOTE_BODY, text)
                    .map_err(vault_err)?;
                sqlx::query(
                    "INSERT INTO notes (id, ticket_id, at, author_id, body, client_id) VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(id)
                .bind(ticket.0)
                .bind(now.0)
                .bind(author.0)
                .bind(body)
                .bind(client_id)
                .execute(&mut *tx)
                .await?;
                (id, false)
            }
        };
        let row = sqlx::query(&format!("{NOTE_SELECT} WHERE n.id = ?"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((note_from_row(&self.vault, &row)?, duplicate))
    }

    async fn notes(&self, ticket: TicketId) -> StoreResult<Vec<Note>> {
        let rows = sqlx::query(&format!(
            "{NOTE_SELECT} WHERE n.ticket_id = ? ORDER BY n.id"
        ))
        .bind(ticket.0)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| note_from_row(&self.vault, r)).collect()
    }

    async fn queue_stats(&self, now: Timestamp) -> StoreResult<QueueStats> {
        let row = sqlx::query(
            "SELECT \
               COALESCE(SUM(status = 'queued'), 0) AS queued, \
               COALESCE(SUM(status = 'assigned'), 0) AS assigned, \
               COALESCE(SUM(status = 'resolved'), 0) AS resolved, \
               MIN(CASE WHEN status = 'queued' THEN queued_at END) AS oldest \
             FROM tickets WHERE status != 'closed'",
        )
        .fetch_one(&self.reader)
        .await?;
        let oldest: Option<i64> = row.try_get("oldest")?;
        Ok(QueueStats {
            queued: row.try_get("queued")?,
            assigned: row.try_get("assigned")?,
            resolved: row.try_get("resolved")?,
            longest_wait_ms: oldest.map(|o| (now.0 - o).max(0)).unwrap_or(0),
        })
    }

    async fn setting(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    async fn put_setting(&self, name: &str, value: &[u8]) -> StoreResult<()> {
        sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
            .bind(name)
            .bind(value)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn retention_candidates(
        &self,
        kind: Retained,
        ended_before: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<RetentionCandidate>> {
        self.sqlite_retention_candidates(kind, ended_before, limit)
            .await
    }

    async fn shred(
        &self,
        kind: Retained,
        ids: &[i64],
        ended_before: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Vec<Shredded>> {
        self.sqlite_shred(kind, ids, ended_before, now).await
    }

    async fn data_key(
        &self,
        owner: &KeyOwner,
        create: bool,
        now: Timestamp,
    ) -> StoreResult<Option<Arc<recorder::DataKey>>> {
        self.sqlite_data_key(owner, create, now).await
    }

    async fn reseal_totp_seed(&self, user: UserId, old: &[u8], new: &[u8]) -> StoreResult<bool> {
        self.sqlite_reseal_totp_seed(user, old, new).await
    }

    async fn set_legal_hold(&self, ticket: TicketId, hold: bool) -> StoreResult<()> {
        self.put_legal_hold(ticket, hold).await
    }

    async fn mark_call(&self, ticket: TicketId) -> StoreResult<()> {
        self.sqlite_mark_call(ticket).await
    }
    async fn create_recording(
        &self,
        ticket: TicketId,
        call_id: &str,
        rate: u32,
        now: Timestamp,
    ) -> StoreResult<(i64, Arc<recorder::DataKey>)> {
        self.sqlite_create_recording(ticket, call_id, rate, now)
            .await
    }
    async fn update_recording(
        &self,
        id: i64,
        manifest: &[u8],
        segments: i64,
        frames: i64,
        state: RecordingState,
        ended: Option<Timestamp>,
    ) -> StoreResult<()> {
        self.sqlite_update_recording(id, manifest, segments, frames, state, ended)
            .await
    }
    async fn recording(&self, id: i64) -> StoreResult<StoredRecording> {
        self.sqlite_recording(id).await
    }
    async fn call_recorded(&self, call_id: &str) -> StoreResult<bool> {
        self.sqlite_call_recorded(call_id).await
    }
    async fn ticket_recordings(&self, ticket: TicketId) -> StoreResult<Vec<StoredRecording>> {
        self.sqlite_ticket_recordings(ticket).await
    }

    async fn take_setting(&self, name: &str, value: &[u8]) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM settings WHERE name = ? AND value = ?")
            .bind(name)
            .bind(value)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // --- step-up verification ----------------------------------------------------------------
    fn verification(&self) -> &dyn verify::VerificationStore {
        self
    }

    async fn flag_for_step_up(
        &self,
        ticket: TicketId,
        phrase: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.seal_step_up_flag(ticket, phrase, now).await
    }

    async fn step_up_flag(&self, ticket: TicketId) -> StoreResult<Option<String>> {
        self.open_step_up_flag(ticket).await
    }
    async fn step_up_flags(&self, tickets: &[TicketId]) -> StoreResult<Vec<(TicketId, String)>> {
        self.open_step_up_flags(tickets).await
    }

    async fn create_enrolment_session(
        &self,
        token_hash: &[u8],
        user: UserId,
        now: Timestamp,
        expires: Timestamp,
    ) -> StoreResult<()> {
        verification::create_enrolment_session(self, token_hash, user, now, expires).await
    }

    async fn enrolling_user(&self, token_hash: &[u8], now: Timestamp) -> StoreResult<User> {
        verification::enrolling_user(self, token_hash, now).await
    }

    // --- audit log and access grants: in audit.rs ---------------------------------------------
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<AuditRecord> {
        self.sqlite_append_audit(entry).await
    }
    async fn audit_after(&self, after: i64, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        self.sqlite_audit_after(after, limit).await
    }
    async fn audit_search(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        self.sqlite_audit_search(filter).await
    }
    async fn audit_head(&self) -> StoreResult<Option<(i64, ChainHash)>> {
        self.sqlite_audit_head().await
    }
    async fn add_audit_checkpoint(
        &self,
        checkpoint: &AuditCheckpoint,
        after: Option<i64>,
    ) -> StoreResult<bool> {
        self.sqlite_add_audit_checkpoint(checkpoint, after).await
    }
    async fn audit_checkpoints(&self) -> StoreResult<Vec<AuditCheckpoint>> {
        self.sqlite_audit_checkpoints().await
    }
    async fn create_grant(&self, grant: NewGrant) -> StoreResult<StoredGrant> {
        self.sqlite_create_grant(grant).await
    }
    async fn grant(&self, id: GrantId) -> StoreResult<StoredGrant> {
        self.sqlite_grant(id).await
    }
    async fn grants(&self, filter: GrantFilter) -> StoreResult<Vec<StoredGrant>> {
        self.sqlite_grants(filter).await
    }
    async fn change_grant(&self, id: GrantId, change: GrantChange) -> StoreResult<StoredGrant> {
        self.sqlite_change_grant(id, change).await
    }
    async fn due_grants(&self, now: Timestamp) -> StoreResult<Vec<StoredGrant>> {
        self.sqlite_due_grants(now).await
    }
}

async fn ticket_of_conversation(
    vault: &Vault,
    conn: &mut SqliteConnection,
    id: ConversationId,
) -> StoreResult<Ticket> {
    let row = sqlx::query(&format!("{TICKET_SELECT} WHERE c.id = ?"))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    ticket_from_row(vault, &row)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database in WAL mode with a table of page-sized rows: the writer's pool as the store
    /// builds it, with the restart flag it takes, and a connection for checkpoints.
    async fn log_db(dir: &Path) -> (SqlitePool, RestartDue, SqlitePool) {
        let base = SqliteConnectOptions::new()
            .filename(dir.join("log.db"))
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let restart = RestartDue::default();
        let writer = writer_pool(restart.clone())
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .pragma("wal_autocheckpoint", "0"),
            )
            .await
            .unwrap();
        sqlx::query("CREATE TABLE pages (id INTEGER PRIMARY KEY, fill BLOB NOT NULL)")
            .execute(&writer)
            .await
            .unwrap();
        let checkpoints = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base)
            .await
            .unwrap();
        (writer, restart, checkpoints)
    }

    /// One commit that changes a page or two.
    async fn commit(writer: &SqlitePool, i: i64) {
        sqlx::query("INSERT OR REPLACE INTO pages (id, fill) VALUES (?, zeroblob(3500))")
            .bind(i % 64)
            .execute(writer)
            .await
            .unwrap_or_else(|e| panic!("commit {i}: {e}"));
    }

    #[tokio::test]
    async fn a_restart_asked_for_runs_before_the_writers_next_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, restart, checkpoints) = log_db(dir.path()).await;
        for i in 0..100 {
            commit(&writer, i).await;
        }
        let long = passive(&checkpoints).await.unwrap();
        assert!(long >= 100, "{long} frames after 100 commits");

        restart.store(true, Ordering::Release);
        commit(&writer, 100).await;
        assert!(
            !restart.load(Ordering::Acquire),
            "the writer left the restart"
        );
        // The commit after the restart wrote from the log's start.
        let after = passive(&checkpoints).await.unwrap();
        assert!(
            after < 10,
            "{after} frames after the restart, {long} before"
        );
    }

    /// A writer that keeps committing: the checkpointer, catching up before each hand-over,
    /// makes the log start over, where without a restart its file would hold every frame
    /// written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn constant_commits_leave_the_log_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, restart, checkpoints) = log_db(dir.path()).await;
        let stop = CancellationToken::new();
        let bounds = Checkpoints {
            every: Duration::from_millis(20),
            restart_bytes: 256 * 1024,
        };
        let checking = tokio::spawn(checkpointer(checkpoints, restart, stop.clone(), bounds));
        // 8,192 commits back to back, some 60 MiB of log. Between commits so close a passive
        // pass seldom copies the whole log, so the log seldom starts over by itself: it takes
        // the hand-over.
        for i in 0..8192 {
            commit(&writer, i).await;
        }
        stop.cancel();
        checking.await.unwrap();
        let wal = std::fs::metadata(dir.path().join("log.db-wal"))
            .unwrap()
            .len();
        // A log that never started over would hold every frame: 8,192 of them at the least.
        let everything = 8192 * (24 + 4096);
        assert!(
            wal < everything,
            "the log's file grew to {wal} bytes, as if it never started over"
        );
    }
}
