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
pub(crate) fn canary(tag: &str) -> String {
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
pub(crate) fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files_containing_bytes(dir, needle.as_bytes())
}

fn files_containing_bytes(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

/// Enrols a TOTP second factor for `who`; returns its seed (base32, as the app shows it).
async fn enrol_totp(app: &TestApp, who: &Staff) -> String {
    use verify::totp::{code_at, seed_from_base32};
    let (status, e) = app
        .post("/api/me/mfa/totp", Some(&who.token), json!({}))
        .await;
    assert_eq!(status, 201, "{e}");
    let secret = e["secret"].as_str().unwrap().to_string();
    let seed = seed_from_base32(&secret).unwrap();
    let code = code_at(&seed, (app.clock.now().millis() / 1000) as u64);
    let (status, body) = app
        .post(
            "/api/me/mfa/totp/confirm",
            Some(&who.token),
            json!({"code": code}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    secret
}

/// Logs in with a password and the current TOTP code of `secret`.
async fn login_with_totp(app: &TestApp, username: &str, secret: &str) -> (u16, Value) {
    use verify::totp::{code_at, seed_from_base32};
    let seed = seed_from_base32(secret).unwrap();
    let code = code_at(&seed, (app.clock.now().millis() / 1000) as u64);
    app.post(
        "/api/session",
        None,
        json!({"username": username, "password": deskgate_tests::PASSWORD, "otp": code}),
    )
    .await
}

#[tokio::test]
async fn a_canary_sent_through_the_chat_is_nowhere_on_disk() {
    let in_risk = canary("risk");
    let phrase = in_risk.clone();
    let app = TestApp::builder()
        .config(move |c| c.verification.risk_phrases = Some(vec![phrase]))
        .start()
        .await;
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
        .send_text(
            None,
            "c-1",
            &format!("Hello, my code word is {in_chat}, about {in_risk}"),
        )
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

    // The ticket was flagged for step-up by the risk phrase; staff still read which one.
    let (_, flags) = app
        .get(
            &format!("/api/tickets/{ticket}/verifications"),
            Some(&grace.token),
        )
        .await;
    assert_eq!(flags["flagged"], in_risk.as_str(), "{flags}");
    // A staff member's TOTP seed, enrolled: sealed under the vault's keys.
    let admin = app.admin().await;
    let seed_base32 = enrol_totp(&app, &admin).await;
    let seed_raw = verify::totp::seed_from_base32(&seed_base32).unwrap();
    let seed_hex = hex(seed_raw.expose());

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
        &in_chat,
        &in_reply,
        &in_note,
        &in_name,
        &in_email,
        &in_sub,
        &in_phone,
        &in_risk,
        &seed_base32,
        &seed_hex,
    ] {
        let leaks = files_containing(app.data_dir(), needle);
        assert!(leaks.is_empty(), "{needle} found in clear in {leaks:?}");
    }
    let raw_leaks = files_containing_bytes(app.data_dir(), seed_raw.expose());
    assert!(
        raw_leaks.is_empty(),
        "the raw TOTP seed is in {raw_leaks:?}"
    );
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
        &in_chat,
        &in_reply,
        &in_note,
        &in_name,
        &in_email,
        &in_sub,
        &in_phone,
        &in_risk,
        &seed_base32,
        &seed_hex,
    ] {
        let leaks = files_containing(app.data_dir(), needle);
        assert!(leaks.is_empty(), "{needle} found in clear in {leaks:?}");
    }
    let raw_leaks = files_containing_bytes(app.data_dir(), seed_raw.expose());
    assert!(
        raw_leaks.is_empty(),
        "the raw TOTP seed is in {raw_leaks:?}"
    );
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
    // No sweep, no restart: the running server notices the new keyring before it wraps the
    // next data key.
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
    // Nothing uses v1 any more, but v2 is seconds old: another gateway on this keyring may
    // not have read it yet, so retiring waits unless forced.
    let (ok, refused) = keys(&app, &["retire", "--version", "1"]);
    assert!(!ok, "{refused}");
    assert!(refused.contains("retire again in"), "{refused}");
    assert!(refused.contains("--force"), "{refused}");
    // Keys written between the rotation and the retirement are wrapped by v2.
    let late = app.customer_with_ticket("between rewrap and retire").await;
    assert_eq!(
        key_version(&app, &format!("conversation:{}", late.conversation)).await,
        Some(2)
    );
    let (ok, out) = keys(&app, &["retire", "--version", "1", "--force"]);
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
        .config(|c| {
            c.retention = c.retention.clone().with(
                recorder::retention::TRANSCRIPT,
                Duration::from_secs(24 * 3600),
            )
        })
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
    assert_eq!(
        shredded[0]["customer"], a.visitor.customer_id,
        "{shredded:?}"
    );
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

/// A customer signed in by a site (name, email, phone), whose first message opened a ticket.
async fn known_customer(app: &TestApp, sub: &str, text: &str) -> Opened {
    let exp = app.clock.now().millis() / 1000 + 600;
    let token = sign(
        app,
        json!({"sub": sub, "name": format!("Name of {sub}"), "email": format!("{sub}@example.com"),
               "phone": "+1 415-555-0132", "exp": exp}),
    );
    let visitor = app
        .visitor_with(json!({"site_key": "demo", "identity_token": token}))
        .await;
    let (mut ws, _) = app.customer_ws(&visitor).await;
    let ack = ws.send_text(None, "first", text).await;
    Opened {
        ticket: ack["ticket"].as_i64().unwrap(),
        conversation: ack["conversation"].as_i64().unwrap(),
        visitor,
        ws,
    }
}

/// Customer records have a retention of their own: a customer with no ticket activity for
/// the period has their data key destroyed, so their name, email and phone are gone from the
/// database and from every backup of it; one with an open ticket, one seen recently, or one
/// with a transcript on legal hold is kept. Each shredding is audited with the customer.
#[tokio::test]
async fn retention_shreds_idle_customer_records_unless_active_or_held() {
    use recorder::retention::{CUSTOMER, TRANSCRIPT};
    const DAY: Duration = Duration::from_secs(24 * 3600);
    let app = TestApp::builder()
        .reopen_window(Duration::from_secs(3600))
        .config(|c| {
            c.retention = c
                .retention
                .clone()
                .with(TRANSCRIPT, 10 * DAY)
                .with(CUSTOMER, 30 * DAY)
        })
        .start()
        .await;
    let grace = app.agent("grace").await;
    let (mut g, _) = app.agent_ws(&grace).await;
    let idle = known_customer(&app, "idle", "Where is my parcel?").await;
    let held = known_customer(&app, "held", "About the contract").await;
    let open = known_customer(&app, "open", "Still waiting").await;
    for t in [idle.ticket, held.ticket] {
        g.request(json!({"type": "claim", "ticket": t})).await;
        let ok = g.request(json!({"type": "resolve", "ticket": t})).await;
        assert_eq!(ok["type"], "ok", "{ok}");
    }
    let admin = app.admin().await;
    let (status, _) = app
        .put(
            &format!("/api/tickets/{}/legal-hold", held.ticket),
            Some(&admin.token),
            json!({"hold": true, "reason": "litigation matter 2026-204"}),
        )
        .await;
    assert_eq!(status, 204);
    app.clock.advance(Duration::from_secs(2 * 3600));
    deskgate::server::sweep(&app.app).await;

    // Twenty days on: transcripts are past their 10 days, customers not yet past 30.
    app.clock.advance(20 * DAY);
    deskgate::server::sweep(&app.app).await;
    assert!(app.audit("action=customer_shredded").await.is_empty());
    // A returning visitor counts as activity.
    let seen = known_customer(&app, "seen", "Hello").await;
    app.clock.advance(Duration::from_secs(3600));
    deskgate::server::sweep(&app.app).await;
    let mut g2 = app.agent_ws(&app.login("grace").await).await.0;
    g2.request(json!({"type": "claim", "ticket": seen.ticket}))
        .await;
    g2.request(json!({"type": "resolve", "ticket": seen.ticket}))
        .await;

    app.clock.advance(11 * DAY);
    deskgate::server::sweep(&app.app).await;
    let admin = app.login(&admin.username).await;
    let look = |id: i64| {
        let token = admin.token.clone();
        let app = &app;
        async move {
            let (status, c) = app.get(&format!("/api/customers/{id}"), Some(&token)).await;
            assert_eq!(status, 200, "{c}");
            c
        }
    };
    let gone = look(idle.visitor.customer_id).await;
    assert_eq!(gone["name"], deskgate::vault::SHREDDED, "{gone}");
    assert!(gone["email"].is_null() && gone["phone"].is_null(), "{gone}");
    let (status, revealed) = app
        .post(
            &format!("/api/customers/{}/reveal", idle.visitor.customer_id),
            Some(&admin.token),
            json!({"field": "email", "reason": "checking what retention left"}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(revealed["value"].is_null(), "{revealed}");
    for (who, kept) in [(&held, "held"), (&open, "open"), (&seen, "seen")] {
        let c = look(who.visitor.customer_id).await;
        assert_eq!(c["name"], format!("Name of {kept}"), "{c}");
    }
    // Only the idle one's key is gone; the widget's token of that customer stops working.
    assert_eq!(
        key_version(&app, &format!("customer:{}", idle.visitor.customer_id)).await,
        None
    );
    let (closed, _) = app.hello_refused("/ws/customer", &idle.visitor.token).await;
    assert_eq!(closed, deskgate_tests::Closed::Code(4001));
    let shredded = app.audit("action=customer_shredded").await;
    assert_eq!(shredded.len(), 1, "{shredded:?}");
    assert_eq!(shredded[0]["customer"], idle.visitor.customer_id);
    assert_eq!(shredded[0]["object_kind"], "customer");
    assert_eq!(shredded[0]["role"], "system");
    // The same person signing in again is a new customer; the old record stays unreadable.
    let back = known_customer(&app, "idle", "I am back").await;
    assert_ne!(back.visitor.customer_id, idle.visitor.customer_id);
    let app = app.restart().await;
    let admin = app.login(&admin.username).await;
    let (_, gone) = app
        .get(
            &format!("/api/customers/{}", idle.visitor.customer_id),
            Some(&admin.token),
        )
        .await;
    assert_eq!(gone["name"], deskgate::vault::SHREDDED, "{gone}");
}

/// Staff TOTP seeds are sealed under a data key of their user, wrapped by the keyring like
/// every other: rotation and re-wrapping move it, and after the old version is retired the
/// second factor still works. A seed sealed the old way (under the verification key) is
/// sealed again at start-up.
#[tokio::test]
async fn totp_seeds_are_sealed_with_the_keyring_and_resealed_at_start() {
    let app = TestApp::start().await;
    let admin = app.admin().await;
    let secret = enrol_totp(&app, &admin).await;
    let owner = format!("user:{}", admin.id);
    assert_eq!(key_version(&app, &owner).await, Some(1));
    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT sealed_seed FROM staff_totp WHERE user_id = ?")
            .bind(admin.id)
            .fetch_one(&mut db(&app).await)
            .await
            .unwrap();
    assert_eq!(sealed[0], 2, "sealed as a vault record");

    for args in [
        &["rotate"][..],
        &["rewrap"],
        &["retire", "--version", "1", "--force"],
    ] {
        let (ok, out) = keys(&app, args);
        assert!(ok, "{args:?}: {out}");
    }
    assert_eq!(key_version(&app, &owner).await, Some(2));
    let mut app = app.restart().await;
    app.clock.advance(Duration::from_secs(30));
    let (status, body) = login_with_totp(&app, &admin.username, &secret).await;
    assert_eq!(status, 201, "the seed opens with v2 alone: {body}");

    // An older gateway sealed seeds with AES-256-GCM under a key derived from verify.key.
    app.stop().await;
    let legacy = legacy_seal(&app, admin.id, &secret);
    sqlx::query("UPDATE staff_totp SET sealed_seed = ? WHERE user_id = ?")
        .bind(&legacy)
        .bind(admin.id)
        .execute(&mut db(&app).await)
        .await
        .unwrap();
    let app = app.restart().await;
    let resealed: Vec<u8> =
        sqlx::query_scalar("SELECT sealed_seed FROM staff_totp WHERE user_id = ?")
            .bind(admin.id)
            .fetch_one(&mut db(&app).await)
            .await
            .unwrap();
    assert_eq!(resealed[0], 2, "sealed again with the vault at start");
    app.clock.advance(Duration::from_secs(30));
    let (status, body) = login_with_totp(&app, &admin.username, &secret).await;
    assert_eq!(status, 201, "{body}");
}

/// What a gateway before the vault's sealing of seeds stored: `1 ‖ nonce ‖ AES-256-GCM(seed)`
/// under HMAC-SHA256(verify.key, "deskgate-verify-seal"), the user id in the associated data.
fn legacy_seal(app: &TestApp, user: i64, secret: &str) -> Vec<u8> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use hmac::Mac;
    let master = std::fs::read_to_string(app.data_dir().join("keys/verify.key")).unwrap();
    let master: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&master.trim()[i..i + 2], 16).unwrap())
        .collect();
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&master).unwrap();
    mac.update(b"deskgate-verify-seal");
    let key = mac.finalize().into_bytes();
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&key).unwrap();
    let seed = verify::totp::seed_from_base32(secret).unwrap();
    let mut aad = b"deskgate-totp-seed-v1".to_vec();
    aad.extend_from_slice(&user.to_be_bytes());
    let nonce = [5u8; 12];
    let ct = cipher
        .encrypt(
            aes_gcm::Nonce::from_slice(&nonce),
            Payload {
                msg: seed.expose(),
                aad: &aad,
            },
        )
        .unwrap();
    let mut out = vec![1u8];
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// The keyring as `deskgate serve` sets it up: created 0600 with a warning on first run,
/// with a warning too while it lives inside the data dir; a configured file must exist, and a
/// missing one stops the start with an error naming it.
#[tokio::test]
async fn keyring_setup_through_the_server() {
    let data = tempfile::tempdir().unwrap();
    let out = serve_until_ready(&[], data.path(), &[]);
    let keyring = data.path().join("keyring.json");
    assert!(out.contains("WARNING: created a new keyring"), "{out}");
    assert!(out.contains("is inside the data dir"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keyring).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Second start: the same keyring, no "created" warning.
    let before = std::fs::read(&keyring).unwrap();
    let out = serve_until_ready(&[], data.path(), &[]);
    assert!(!out.contains("created a new keyring"), "{out}");
    assert_eq!(std::fs::read(&keyring).unwrap(), before);

    // A configured keyring that does not exist, by flag or by variable: a clear error.
    let secrets = tempfile::tempdir().unwrap();
    let missing = secrets.path().join("missing-keyring.json");
    let fresh = tempfile::tempdir().unwrap();
    for (args, env) in [
        (vec!["--keyring-file", missing.to_str().unwrap()], vec![]),
        (
            vec![],
            vec![("DESKGATE_KEYRING_FILE", missing.to_str().unwrap())],
        ),
    ] {
        let out = Command::new(crate::config::deskgate_binary())
            .arg("serve")
            .args(&args)
            .arg("--data")
            .arg(fresh.path())
            .env_remove("DESKGATE_KEYRING_FILE")
            .envs(env)
            .env("DESKGATE_LISTEN", "127.0.0.1:0")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("missing-keyring.json"), "{stderr}");
        assert!(!missing.exists(), "a configured keyring is never made up");
    }

    // A keyring outside the data dir (as from a secret manager): used, nothing created in the
    // data dir, no warning about it.
    let configured = secrets.path().join("keyring.json");
    recorder::Keyring::generate(0)
        .write_new(&configured)
        .unwrap();
    let other = tempfile::tempdir().unwrap();
    let out = serve_until_ready(
        &[],
        other.path(),
        &[("DESKGATE_KEYRING_FILE", configured.to_str().unwrap())],
    );
    assert!(!out.contains("created a new keyring"), "{out}");
    assert!(!out.contains("inside the data dir"), "{out}");
    assert!(!other.path().join("keyring.json").exists());
}

/// Runs `deskgate serve` on `data` until it prints its banner, then stops it (SIGTERM);
/// returns what it printed on stderr.
fn serve_until_ready(args: &[&str], data: &Path, env: &[(&str, &str)]) -> String {
    use std::io::{BufRead, BufReader, Read};
    let mut child = Command::new(crate::config::deskgate_binary())
        .arg("serve")
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("DESKGATE_KEYRING_FILE")
        .envs(env.iter().copied())
        .env("DESKGATE_LISTEN", "127.0.0.1:0")
        .env("DESKGATE_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut ready = false;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if line.starts_with("deskgate is listening on ") {
            ready = true;
            break;
        }
    }
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = child.wait();
    let logs = logs.join().unwrap();
    assert!(ready, "deskgate serve did not come up:\n{logs}");
    logs
}
