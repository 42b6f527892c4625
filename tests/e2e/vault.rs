//! The vault through the real server: nothing a customer typed is on disk in clear, sealed
//! records cannot be moved between rows, keys rotate, re-wrap and retire with the gateway
//! running, and retention crypto-shreds transcripts unless they are on legal hold.

use deskgate::clock::Clock;
use deskgate_tests::{Opened, Staff, TestApp};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sqlx::{Connection, SqliteConnection};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);

/// A string no test has used before, so finding it can only mean this run leaked it.
fn canary(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("canary{tag}{nanos:x}{}", std::process::id())
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The files under `dir` that contain `needle`, byte for byte.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let needle = needle.as_bytes();
    files(dir)
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle)
        })
        .collect()
}

fn sign(app: &TestApp, claims: Value) -> String {
    let secret = std::fs::read_to_string(app.data_dir().join("sites/demo.identity-secret"))
        .unwrap()
        .trim()
        .to_string();
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn db(app: &TestApp) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", app.db_path().display()))
        .await
        .unwrap()
}

/// Runs `deskgate keys <args> --data <dir>` on the running gateway's data dir.
fn keys(app: &TestApp, args: &[&str]) -> (bool, String) {
    let out = Command::new(crate::config::deskgate_binary())
        .arg("keys")
        .args(args)
        .arg("--data")
        .arg(app.data_dir())
        .env_remove("DESKGATE_KEYRING_FILE")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn key_version(app: &TestApp, owner: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT key_version FROM data_keys WHERE owner = ?")
        .bind(owner)
        .fetch_optional(&mut db(app).await)
        .await
        .unwrap()
}

/// The texts of a conversation as the store opens them (closed transcripts are not served to
/// anyone without a grant, so retention is checked below the API).
async fn stored(app: &TestApp, conversation: i64) -> Vec<String> {
    app.app
        .store
        .messages_after(
            deskgate::ids::ConversationId(conversation),
            deskgate::ids::Seq(0),
            1000,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect()
}

async fn texts(app: &TestApp, staff: &Staff, ticket: i64) -> (u16, Vec<String>) {
    let (status, body) = app
        .get(
            &format!("/api/tickets/{ticket}/messages"),
            Some(&staff.token),
        )
        .await;
    let texts = body
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["text"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    (status, texts)
}

/// Grace claims the customer's ticket.
async fn claimed(app: &TestApp, text: &str) -> (Staff, deskgate_tests::WsClient, Opened) {
    let grace = app.agent("grace").await;
    let (mut g, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket(text).await;
    let ok = g
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    c.ws.drain(QUIET).await;
    (grace, g, c)
}

#[tokio::test]
async fn a_canary_sent_through_the_chat_is_nowhere_on_disk() {
    let app = TestApp::start().await;
    let in_chat = canary("chat");
    let in_reply = canary("reply");
    let in_note = canary("note");
    let in_name = canary("name");
    let in_email = format!("{}@example.com", canary("mail"));
    let in_sub = canary("sub");
    let digits = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 10_000_000_000;
    let in_phone = format!("+1 555 {digits:010}");

    // A customer vouched for by the site, with PII in the signed identity.
    let exp = app.clock.now().millis() / 1000 + 600;
    let token = sign(
        &app,
        json!({"sub": in_sub, "name": in_name, "email": in_email, "phone": in_phone, "exp": exp}),
    );
    let visitor = app
        .visitor_with(json!({"site_key": "demo", "identity_token": token}))
        .await;
    let (mut cws, _) = app.customer_ws(&visitor).await;
    let grace = app.agent("grace").await;
    let (mut g, _) = app.agent_ws(&grace).await;
    let ack = cws
        .send_text(None, "c-1", &format!("Hello, my code word is {in_chat}"))
        .await;
    let ticket = ack["ticket"].as_i64().unwrap();
    let conversation = ack["conversation"].as_i64().unwrap();
    g.request(json!({"type": "claim", "ticket": ticket})).await;
    // Customer to agent, live (the group-commit path): the agent reads it in clear.
    cws.send_text(Some(ticket), "c-2", &format!("again {in_chat}"))
        .await;
    let seen = g
        .recv_where("the customer's message", |f| {
            f["type"] == "message" && f["text"].as_str().is_some_and(|t| t.contains(&in_chat))
        })
        .await;
    assert_eq!(seen["seq"], 3);
    g.send_text(Some(ticket), "a-1", &format!("Thanks, noted {in_reply}"))
        .await;
    let ok = g
        .request(json!({"type": "note", "ticket": ticket, "client_id": "n-1", "text": in_note}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");

    // Authorised readers still get plaintext: history, notes, the customer record, resume.
    let (status, history) = texts(&app, &grace, ticket).await;
    assert_eq!(status, 200);
    assert!(history.iter().any(|t| t.contains(&in_chat)), "{history:?}");
    assert!(history.iter().any(|t| t.contains(&in_reply)), "{history:?}");
    let (_, notes) = app
        .get(&format!("/api/tickets/{ticket}/notes"), Some(&grace.token))
        .await;
    assert_eq!(notes[0]["text"], in_note.as_str());
    let (_, detail) = app
        .get(&format!("/api/tickets/{ticket}"), Some(&grace.token))
        .await;
    assert!(detail.to_string().contains(&in_name), "{detail}");
    let (mut again, _) = app
        .hello(
            "/ws/customer",
            &visitor.token,
            json!([{"conversation": conversation, "after": 0}]),
        )
        .await;
    let resumed = again.messages_until(conversation, 4).await;
    assert!(
        resumed.iter().any(|f| f.to_string().contains(&in_chat)),
        "{resumed:?}"
    );

    // Positive control: the same search over the same files finds a value stored in clear.
    let control = canary("control");
    app.app
        .store
        .put_setting("vault-test-control", control.as_bytes())
        .await
        .unwrap();
    let found = files_containing(app.data_dir(), &control);
    assert!(
        found.iter().any(|p| p.ends_with("deskgate.db-wal")),
        "the search must see the WAL: {found:?}"
    );
    let wal = app.data_dir().join("deskgate.db-wal");
    let shm = app.data_dir().join("deskgate.db-shm");
    assert!(app.db_path().exists() && wal.exists() && shm.exists());

    for needle in [
        &in_chat, &in_reply, &in_note, &in_name, &in_email, &in_sub, &in_phone,
    ] {
        let leaks = files_containing(app.data_dir(), needle);
        assert!(leaks.is_empty(), "{needle} found in clear in {leaks:?}");
    }
    // And after a clean stop, once the WAL is checkpointed into the database file.
    let mut app = app;
    app.stop().await;
    let mut conn = db(&app).await;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert!(!files_containing(app.data_dir(), &control).is_empty());
    for needle in [
        &in_chat, &in_reply, &in_note, &in_name, &in_email, &in_sub, &in_phone,
    ] {
        let leaks = files_containing(app.data_dir(), needle);
        assert!(leaks.is_empty(), "{needle} found in clear in {leaks:?}");
    }
}

#[tokio::test]
async fn a_sealed_body_moved_to_another_row_does_not_open() {
    let app = TestApp::start().await;
    let (grace, _g, mut c) = claimed(&app, "first words").await;
    let secret = canary("moved");
    c.ws.send_text(Some(c.ticket), "c-2", &secret).await;
    c.ws.send_text(Some(c.ticket), "c-3", "harmless").await;
    let other = app.customer_with_ticket("someone else").await;

    let mut conn = db(&app).await;
    let seq_of_secret: i64 =
        sqlx::query_scalar("SELECT MAX(seq) - 1 FROM messages WHERE conversation_id = ?")
            .bind(c.conversation)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    // Within the conversation: the secret's ciphertext over the next message's.
    sqlx::query(
        "UPDATE messages SET body = (SELECT body FROM messages WHERE conversation_id = ?1 AND seq = ?2) \
         WHERE conversation_id = ?1 AND seq = ?2 + 1",
    )
    .bind(c.conversation)
    .bind(seq_of_secret)
    .execute(&mut conn)
    .await
    .unwrap();
    // Across conversations: into the other customer's first message.
    sqlx::query(
        "UPDATE messages SET body = (SELECT body FROM messages WHERE conversation_id = ? AND seq = ?) \
         WHERE conversation_id = ? AND seq = 1",
    )
    .bind(c.conversation)
    .bind(seq_of_secret)
    .bind(other.conversation)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let admin = app.admin().await;
    for (ticket, who) in [(c.ticket, &grace), (other.ticket, &admin)] {
        let (status, body) = app
            .get(&format!("/api/tickets/{ticket}/messages"), Some(&who.token))
            .await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "unavailable");
        assert!(!body.to_string().contains(&secret), "{body}");
    }
}

#[tokio::test]
async fn rotate_rewrap_and_retire_while_the_gateway_runs() {
    let app = TestApp::start().await;
    let admin = app.admin().await;
    let before = app.customer_with_ticket("before rotation").await;
    let old_conv = format!("conversation:{}", before.conversation);
    assert_eq!(key_version(&app, &old_conv).await, Some(1));

    let (ok, out) = keys(&app, &["rotate"]);
    assert!(ok, "{out}");
    assert!(out.contains("v2"), "{out}");
    // The running server picks the new version up on its sweep.
    deskgate::server::sweep(&app.app).await;
    let after = app.customer_with_ticket("after rotation").await;
    let new_conv = format!("conversation:{}", after.conversation);
    assert_eq!(key_version(&app, &new_conv).await, Some(2));
    assert_eq!(key_version(&app, &old_conv).await, Some(1));

    let (ok, status) = keys(&app, &["status"]);
    assert!(ok, "{status}");
    assert!(status.contains("v1") && status.contains("v2  "), "{status}");
    assert!(status.contains("wraps 2 data key(s)  current"), "{status}");

    // Retiring a version still in use is refused, naming what uses it.
    let (ok, refused) = keys(&app, &["retire", "--version", "1"]);
    assert!(!ok, "{refused}");
    assert!(refused.contains(&old_conv), "{refused}");
    assert!(refused.contains("rewrap"), "{refused}");

    let (ok, out) = keys(&app, &["rewrap"]);
    assert!(ok, "{out}");
    assert!(out.contains("re-wrapped 2 data key(s)"), "{out}");
    assert_eq!(key_version(&app, &old_conv).await, Some(2));
    let (ok, out) = keys(&app, &["retire", "--version", "1"]);
    assert!(ok, "{out}");
    let (_, status) = keys(&app, &["status"]);
    assert!(!status.contains("v1 "), "{status}");

    // A fresh process (no cached keys) opens old and new transcripts with v2 alone.
    let app = app.restart().await;
    for (ticket, text) in [
        (before.ticket, "before rotation"),
        (after.ticket, "after rotation"),
    ] {
        let (status, history) = texts(&app, &admin, ticket).await;
        assert_eq!(status, 200);
        assert_eq!(history[0], text);
    }
    // Retiring the current version is refused.
    let (ok, out) = keys(&app, &["retire", "--version", "2"]);
    assert!(!ok, "{out}");

    // Each change to the keyring is in the audit log; the refused one changed nothing.
    let changes: Vec<String> = app
        .audit("action=keys_rotated")
        .await
        .iter()
        .rev()
        .map(|e| e["detail"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(changes[0].starts_with("rotate"), "{changes:?}");
    assert!(changes[1].starts_with("rewrap"), "{changes:?}");
    assert_eq!(changes[2], "retire: v1", "{changes:?}");
}

#[tokio::test]
async fn retention_shreds_closed_transcripts_unless_on_legal_hold() {
    let app = TestApp::builder()
        .reopen_window(Duration::from_secs(3600))
        .config(|c| c.transcript_retention = Duration::from_secs(24 * 3600))
        .start()
        .await;
    let admin = app.admin().await;
    let gone = canary("gone");
    let kept = canary("kept");
    let (_, mut g, a) = claimed(&app, &gone).await;
    let b = app.customer_with_ticket(&kept).await;
    g.request(json!({"type": "claim", "ticket": b.ticket}))
        .await;
    for t in [a.ticket, b.ticket] {
        let ok = g.request(json!({"type": "resolve", "ticket": t})).await;
        assert_eq!(ok["type"], "ok", "{ok}");
    }
    // Only an admin sets a hold, and only with a reason.
    let hold = format!("/api/tickets/{}/legal-hold", b.ticket);
    let matter = json!({"hold": true, "reason": "litigation matter 2026-117"});
    let (status, _) = app
        .put(
            &hold,
            Some(&app.agent("holdless").await.token),
            matter.clone(),
        )
        .await;
    assert_eq!(status, 403, "an agent may not hold a transcript");
    let (status, body) = app
        .put(
            &hold,
            Some(&admin.token),
            json!({"hold": true, "reason": "x"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app.put(&hold, Some(&admin.token), matter).await;
    assert_eq!(status, 204, "{body}");

    // Closed after the reopen window; still within retention: nothing shredded.
    app.clock.advance(Duration::from_secs(2 * 3600));
    deskgate::server::sweep(&app.app).await;
    assert_eq!(stored(&app, a.conversation).await[0], gone);

    app.clock.advance(Duration::from_secs(2 * 24 * 3600));
    deskgate::server::sweep(&app.app).await;
    // Two days on, the admin's session has expired.
    let admin = app.login(&admin.username).await;
    // A closed transcript is read only through a grant; the store shows what is left of it.
    assert_eq!(texts(&app, &admin, a.ticket).await.0, 403);
    let history = stored(&app, a.conversation).await;
    assert!(
        history.iter().all(|t| t == deskgate::vault::SHREDDED),
        "{history:?}"
    );
    let (_, detail) = app
        .get(&format!("/api/tickets/{}", a.ticket), Some(&admin.token))
        .await;
    assert!(!detail.to_string().contains(&gone), "{detail}");
    assert_eq!(
        key_version(&app, &format!("conversation:{}", a.conversation)).await,
        None,
        "the data key is destroyed"
    );
    let shredded = app.audit("action=transcript_shredded").await;
    assert_eq!(shredded.len(), 1, "{shredded:?}");
    assert_eq!(shredded[0]["object_id"], a.ticket, "{shredded:?}");
    assert_eq!(shredded[0]["role"], "system");
    // The rows are still there, and no key opens them after a restart either.
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE conversation_id = ?")
        .bind(a.conversation)
        .fetch_one(&mut db(&app).await)
        .await
        .unwrap();
    assert!(rows >= 2);
    // Held: readable.
    assert_eq!(stored(&app, b.conversation).await[0], kept);

    let app = app.restart().await;
    assert_eq!(stored(&app, b.conversation).await[0], kept);
    assert_eq!(
        stored(&app, a.conversation).await[0],
        deskgate::vault::SHREDDED
    );
    // Releasing the hold lets the next sweep shred it.
    let admin = app.login(&admin.username).await;
    let (status, body) = app
        .put(
            &format!("/api/tickets/{}/legal-hold", b.ticket),
            Some(&admin.token),
            json!({"hold": false, "reason": "litigation matter 2026-117 closed"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let trail: Vec<String> = app
        .audit("object_kind=ticket")
        .await
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("legal_hold"))
        .map(|e| format!("{} {}", e["action"], e["outcome"]))
        .collect();
    assert_eq!(
        trail,
        [
            r#""legal_hold_released" "allowed""#,
            r#""legal_hold_set" "allowed""#,
            r#""legal_hold_set" "denied""#,
        ],
        "newest first"
    );
    deskgate::server::sweep(&app.app).await;
    assert_eq!(
        stored(&app, b.conversation).await[0],
        deskgate::vault::SHREDDED
    );
}

#[tokio::test]
async fn values_stored_in_clear_before_the_vault_are_sealed_at_start() {
    let mut app = TestApp::start().await;
    let admin = app.admin().await;
    let c = app.customer_with_ticket("to be replaced").await;
    app.stop().await;

    // A database from before migration 0005: the same rows, with text in clear.
    let body = canary("legacybody");
    let name = canary("legacyname");
    let subject = canary("legacysubject");
    let mut conn = db(&app).await;
    sqlx::query(
        "UPDATE messages SET body = ?, author_name = ? WHERE conversation_id = ? AND seq = 1",
    )
    .bind(&body)
    .bind(&name)
    .bind(c.conversation)
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("UPDATE customers SET name = ? WHERE id = ?")
        .bind(&name)
        .bind(c.visitor.customer_id)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE tickets SET subject = ? WHERE id = ?")
        .bind(&subject)
        .bind(c.ticket)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert!(!files_containing(app.data_dir(), &body).is_empty());

    let app = app.restart().await;
    let (status, history) = texts(&app, &admin, c.ticket).await;
    assert_eq!(status, 200);
    assert_eq!(history[0], body);
    let (_, detail) = app
        .get(&format!("/api/tickets/{}", c.ticket), Some(&admin.token))
        .await;
    assert_eq!(detail["ticket"]["subject"], subject.as_str(), "{detail}");
    assert_eq!(
        detail["ticket"]["customer"]["name"],
        name.as_str(),
        "{detail}"
    );
    for needle in [&body, &name, &subject] {
        let leaks = files_containing(app.data_dir(), needle);
        assert!(leaks.is_empty(), "{needle} still in clear in {leaks:?}");
    }
}

#[tokio::test]
async fn a_key_rewrapped_by_the_cli_opens_in_the_running_gateway() {
    let app = TestApp::start().await;
    let admin = app.admin().await;
    let c = app.customer_with_ticket("written under v1").await;
    // A fresh process: no unwrapped key in its cache, keyring v1 in memory.
    let app = app.restart().await;
    let (ok, out) = keys(&app, &["rotate"]);
    assert!(ok, "{out}");
    let (ok, out) = keys(&app, &["rewrap"]);
    assert!(ok, "{out}");
    assert_eq!(
        key_version(&app, &format!("conversation:{}", c.conversation)).await,
        Some(2)
    );
    // No sweep has run: the gateway meets version 2, re-reads the keyring and opens it.
    let (status, history) = texts(&app, &admin, c.ticket).await;
    assert_eq!(status, 200);
    assert_eq!(history[0], "written under v1");
}
