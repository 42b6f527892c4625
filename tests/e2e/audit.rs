//! The audit log through the real server and the real `deskgate audit` command: what gets
//! recorded, the query auditors use, and tamper detection, where each test edits, deletes,
//! reorders or inserts rows in the SQLite file directly and `deskgate audit verify` must name
//! the entry.

use crate::config::deskgate_binary;
use deskgate::clock::Clock;
use deskgate_tests::{TestApp, PASSWORD};
use recorder::audit::{Entry, ObjectRef, GENESIS};
use serde_json::{json, Value};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A gateway that signs a checkpoint every 4 entries, with 13 entries written (logins and
/// user creations), then stopped (which signs the last ones).
async fn stopped_with_entries() -> TestApp {
    let mut app = TestApp::builder()
        .config(|c| c.audit.checkpoint_every = 4)
        .start()
        .await;
    app.admin().await;
    for name in ["ana", "ben", "cai", "dee"] {
        app.agent(name).await;
    }
    app.stop().await;
    app
}

fn deskgate(args: &[&str], data: &Path) -> Output {
    let mut cmd = Command::new(deskgate_binary());
    cmd.args(args)
        .arg("--data")
        .arg(data)
        .env_remove("DESKGATE_AUDIT_KEY_FILE")
        .env_remove("DESKGATE_CONFIG");
    if let Some(url) = deskgate_tests::postgres::url_for(data) {
        cmd.env("DESKGATE_DATABASE_URL", url);
    }
    cmd.output().unwrap()
}

/// Runs `deskgate audit verify`; returns success and what it printed.
fn verify(data: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["audit", "verify"];
    args.extend_from_slice(extra);
    let out = deskgate(&args, data);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn db(app: &TestApp) -> SqlitePool {
    SqlitePool::connect(&format!("sqlite://{}", app.db_path().display()))
        .await
        .unwrap()
}

fn assert_intact(app: &TestApp) {
    let (ok, text) = verify(app.data_dir(), &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("audit log ok: 13 entries, 4 signed checkpoints"),
        "{text}"
    );
}

fn assert_broken_at(app: &TestApp, entry: i64) -> String {
    let (ok, text) = verify(app.data_dir(), &[]);
    assert!(!ok, "tampering went unnoticed: {text}");
    assert!(
        text.contains(&format!("audit log broken: entry {entry}:")),
        "should name entry {entry}: {text}"
    );
    text
}

#[tokio::test]
async fn an_edited_entry_is_named() {
    let app = stopped_with_entries().await;
    assert_intact(&app);
    sqlx::query("UPDATE audit_log SET actor_id = 999 WHERE seq = 5")
        .execute(&db(&app).await)
        .await
        .unwrap();
    assert_broken_at(&app, 5);
}

#[tokio::test]
async fn a_deleted_entry_is_named() {
    let app = stopped_with_entries().await;
    assert_intact(&app);
    sqlx::query("DELETE FROM audit_log WHERE seq = 5")
        .execute(&db(&app).await)
        .await
        .unwrap();
    let text = assert_broken_at(&app, 5);
    assert!(text.contains("missing"), "{text}");
}

#[tokio::test]
async fn reordered_entries_are_named() {
    let app = stopped_with_entries().await;
    assert_intact(&app);
    let pool = db(&app).await;
    for step in [
        "UPDATE audit_log SET seq = -5 WHERE seq = 5",
        "UPDATE audit_log SET seq = 5 WHERE seq = 6",
        "UPDATE audit_log SET seq = 6 WHERE seq = -5",
    ] {
        sqlx::query(step).execute(&pool).await.unwrap();
    }
    assert_broken_at(&app, 5);
}

fn entry_from_row(r: &sqlx::sqlite::SqliteRow) -> Entry {
    let kind: Option<String> = r.get("object_kind");
    Entry {
        at: r.get("at"),
        actor_id: r.get("actor_id"),
        actor_role: r.get("actor_role"),
        action: r.get("action"),
        outcome: r.get("outcome"),
        customer_id: r.get("customer_id"),
        object: kind.map(|k| ObjectRef::new(&k, r.get("object_id"))),
        detail: r.get("detail"),
        ip: r.get("ip"),
        user_agent: r.get("user_agent"),
        request_id: r.get("request_id"),
        customers: r
            .get::<Option<String>, _>("customers")
            .map(|c| c.split(',').map(|id| id.parse().unwrap()).collect())
            .unwrap_or_default(),
    }
}

/// Recomputes every hash of the chain from the rows as they now are, as someone who can
/// write the database would after editing it.
async fn recompute_chain(pool: &SqlitePool) {
    let rows = sqlx::query("SELECT * FROM audit_log ORDER BY seq")
        .fetch_all(pool)
        .await
        .unwrap();
    let mut prev = GENESIS;
    for r in &rows {
        let seq: i64 = r.get("seq");
        let hash = entry_from_row(r).chain_hash(seq, &prev);
        sqlx::query("UPDATE audit_log SET hash = ? WHERE seq = ?")
            .bind(&hash[..])
            .bind(seq)
            .execute(pool)
            .await
            .unwrap();
        prev = hash;
    }
}

/// The strongest insertion: a forged entry slipped in after entry 4, the later entries
/// renumbered, and the whole chain recomputed so that every hash matches its row. Only the
/// signed checkpoints can tell, and the verifier names the first entry after the last
/// checkpoint that still holds.
#[tokio::test]
async fn an_inserted_entry_is_named_even_with_the_chain_recomputed() {
    let app = stopped_with_entries().await;
    assert_intact(&app);
    let pool = db(&app).await;
    sqlx::query("UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 5")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1000")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor_id, actor_role, action, outcome, hash) \
         SELECT 5, at, 1, 'admin', 'login', 'allowed', x'00' FROM audit_log WHERE seq = 4",
    )
    .execute(&pool)
    .await
    .unwrap();
    recompute_chain(&pool).await;
    let text = assert_broken_at(&app, 5);
    assert!(text.contains("checkpoint signed at entry 8"), "{text}");
}

/// Editing an entry, recomputing the chain and deleting every checkpoint from the database
/// does not pass: the checkpoint log outside the database still holds them.
#[tokio::test]
async fn a_rewritten_log_with_its_checkpoints_deleted_is_named() {
    let app = stopped_with_entries().await;
    assert_intact(&app);
    let log = app.data_dir().join("keys/audit-checkpoints.jsonl");
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().count(), 4, "{lines}");
    let pool = db(&app).await;
    sqlx::query("UPDATE audit_log SET outcome = 'denied' WHERE seq = 5")
        .execute(&pool)
        .await
        .unwrap();
    recompute_chain(&pool).await;
    sqlx::query("DELETE FROM audit_checkpoints")
        .execute(&pool)
        .await
        .unwrap();
    let text = assert_broken_at(&app, 5);
    assert!(text.contains("checkpoint signed at entry 8"), "{text}");
}

/// Untouched entries, but checkpoints deleted from the database: the deletion itself is
/// named, and so is one removed from the middle of the chain of checkpoints.
#[tokio::test]
async fn checkpoints_deleted_from_the_database_are_named() {
    let app = stopped_with_entries().await;
    let pool = db(&app).await;
    sqlx::query("DELETE FROM audit_checkpoints WHERE seq >= 8")
        .execute(&pool)
        .await
        .unwrap();
    let (ok, text) = verify(app.data_dir(), &[]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("checkpoint at entry 8: in the checkpoint log but missing from the database"),
        "{text}"
    );
    // The same deletion with the log file cut to match: the next checkpoint left in the
    // file no longer follows the one before it.
    let log = app.data_dir().join("keys/audit-checkpoints.jsonl");
    let kept: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("\"seq\":8,"))
        .map(str::to_string)
        .collect();
    std::fs::write(&log, kept.join("\n") + "\n").unwrap();
    sqlx::query("DELETE FROM audit_checkpoints")
        .execute(&pool)
        .await
        .unwrap();
    let (ok, text) = verify(app.data_dir(), &[]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("checkpoint at entry 12: does not follow the checkpoint at entry 4"),
        "{text}"
    );
}

/// The end of the log cut off together with the checkpoints that cover it.
#[tokio::test]
async fn a_cut_off_end_with_its_checkpoints_is_named() {
    let app = stopped_with_entries().await;
    let pool = db(&app).await;
    sqlx::query("DELETE FROM audit_log WHERE seq >= 12")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_checkpoints WHERE seq >= 12")
        .execute(&pool)
        .await
        .unwrap();
    let text = assert_broken_at(&app, 12);
    assert!(text.contains("the log ends at entry 11"), "{text}");
}

/// Without the checkpoint log the database cannot be cross-checked, which fails; the copy
/// written to a second path (for a SIEM or WORM store) serves in its place.
#[tokio::test]
async fn the_checkpoint_log_has_a_configured_copy() {
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("siem/checkpoints.jsonl");
    let configured = copy.clone();
    let mut app = TestApp::builder()
        .config(move |c| {
            c.audit.checkpoint_every = 4;
            c.audit.copy_file = Some(configured);
        })
        .start()
        .await;
    app.admin().await;
    app.agent("ana").await;
    app.stop().await;
    let primary = app.data_dir().join("keys/audit-checkpoints.jsonl");
    assert_eq!(
        std::fs::read_to_string(&primary).unwrap(),
        std::fs::read_to_string(&copy).unwrap()
    );
    std::fs::remove_file(&primary).unwrap();
    let (ok, text) = verify(app.data_dir(), &[]);
    assert!(!ok, "{text}");
    assert!(text.contains("missing from the checkpoint log"), "{text}");
    let (ok, text) = verify(
        app.data_dir(),
        &["--checkpoint-log", copy.to_str().unwrap()],
    );
    assert!(ok, "{text}");
}

/// An entry appended directly to a stopped gateway's log, its hash chained correctly: the
/// gateway signs everything at shutdown, so an unsigned entry older than two sweeps did not
/// come from it. A fresh one is reported as not yet signed.
#[tokio::test]
async fn an_old_unsigned_entry_fails_and_a_fresh_one_is_reported() {
    let app = stopped_with_entries().await;
    let pool = db(&app).await;
    let forge = |seq: i64, at: i64| {
        let pool = pool.clone();
        async move {
            let prev: Vec<u8> = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = ?")
                .bind(seq - 1)
                .fetch_one(&pool)
                .await
                .unwrap();
            let mut e = Entry::new(
                at,
                recorder::audit::Action::Login,
                recorder::audit::Outcome::Allowed,
            );
            e.actor_id = Some(1);
            e.actor_role = Some("admin".into());
            let hash = e.chain_hash(seq, &prev.try_into().unwrap());
            sqlx::query(
                "INSERT INTO audit_log (seq, at, actor_id, actor_role, action, outcome, hash) \
                 VALUES (?, ?, 1, 'admin', 'login', 'allowed', ?)",
            )
            .bind(seq)
            .bind(at)
            .bind(&hash[..])
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    let now = deskgate::clock::SystemClock.now().millis();
    forge(14, now).await;
    let (ok, text) = verify(app.data_dir(), &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("entries 14-14 are after the last checkpoint"),
        "{text}"
    );
    sqlx::query("DELETE FROM audit_log WHERE seq = 14")
        .execute(&pool)
        .await
        .unwrap();
    forge(14, now - 10 * 60 * 1000).await;
    let (ok, text) = verify(app.data_dir(), &[]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("audit log broken: entries 14-14: not covered by a signed checkpoint"),
        "{text}"
    );
}

/// `verify` reads the data dir and changes nothing: no keyring, no database, no key is made
/// up, and the schema is not migrated.
#[tokio::test]
async fn verify_opens_the_data_dir_read_only() {
    let empty = tempfile::tempdir().unwrap();
    let (ok, text) = verify(empty.path(), &[]);
    assert!(!ok, "{text}");
    assert!(text.contains("no database"), "{text}");
    assert_eq!(
        std::fs::read_dir(empty.path()).unwrap().count(),
        0,
        "nothing created"
    );

    let app = stopped_with_entries().await;
    let keyring = app.data_dir().join("keyring.json");
    std::fs::rename(&keyring, app.data_dir().join("keyring.saved")).unwrap();
    let (ok, text) = verify(app.data_dir(), &[]);
    assert!(ok, "verify needs no keyring: {text}");
    assert!(!keyring.exists(), "and does not create one");
}

#[tokio::test]
async fn a_cut_off_end_is_named() {
    let app = stopped_with_entries().await;
    assert_intact(&app);
    sqlx::query("DELETE FROM audit_log WHERE seq >= 12")
        .execute(&db(&app).await)
        .await
        .unwrap();
    assert_broken_at(&app, 12);
}

#[tokio::test]
async fn checkpoints_checked_with_another_key_fail() {
    let app = stopped_with_entries().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = app.data_dir().join("keys/audit-checkpoint.key");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the private key is readable by its owner only"
        );
    }
    let key = app.data_dir().join("keys/audit-checkpoint.key.pub");
    let key = key.to_str().unwrap();
    let (ok, text) = verify(app.data_dir(), &["--public-key", key]);
    assert!(ok, "the published public key verifies: {text}");

    let other = tempfile::tempdir().unwrap();
    let path = other.path().join("other.key");
    let (other_key, _) = recorder::audit::CheckpointKey::load_or_create(&path).unwrap();
    let public = other.path().join("other.pub");
    std::fs::write(&public, hex(other_key.verifying_key().as_bytes())).unwrap();
    // The checkpoint log stays the data dir's own: only the key is another.
    let log = app.data_dir().join("keys").join("audit-checkpoints.jsonl");
    let log = log.to_str().unwrap();
    for args in [
        vec!["--public-key", public.to_str().unwrap()],
        vec!["--key", path.to_str().unwrap(), "--checkpoint-log", log],
    ] {
        let (ok, text) = verify(app.data_dir(), &args);
        assert!(!ok, "{text}");
        assert!(
            text.contains("checkpoint at entry 4: signature does not verify"),
            "{text}"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn export_writes_json_lines_and_is_itself_recorded() {
    let app = stopped_with_entries().await;
    let out = deskgate(&["audit", "export"], app.data_dir());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<i64> = lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=13).collect::<Vec<_>>());
    assert_eq!(lines[0]["action"], "login");
    assert!(lines
        .iter()
        .all(|l| l["hash"].as_str().unwrap().len() == 64));
    let all = lines.iter().map(Value::to_string).collect::<String>();
    assert!(!all.contains(PASSWORD), "no secrets in the log");
    assert!(!all.contains("dgs_"), "no session tokens in the log");

    let out = deskgate(&["audit", "export", "--after", "12"], app.data_dir());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "entry 13 and the first export's own entry");
    assert_eq!(lines[1]["action"], "audit_exported");
    assert_eq!(lines[1]["detail"], "entries 1-13");
    let (ok, text) = verify(app.data_dir(), &[]);
    assert!(ok, "the export entries extend the chain: {text}");
}

#[tokio::test]
async fn logins_failures_and_blocked_card_numbers_are_recorded() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let (status, _) = app
        .post(
            "/api/session",
            None,
            json!({"username": "grace", "password": "wrong password!"}),
        )
        .await;
    assert_eq!(status, 401);
    app.post(
        "/api/session",
        None,
        json!({"username": "nobody", "password": "wrong password!"}),
    )
    .await;
    let failed = app.audit("action=login_failed").await;
    let actors: Vec<Option<i64>> = failed.iter().map(|e| e["actor"].as_i64()).collect();
    assert_eq!(actors, vec![None, Some(grace.id)]);
    assert!(failed.iter().all(|e| e["outcome"] == "failed"));
    assert!(!Value::Array(failed).to_string().contains("nobody"));

    let mut c = app.customer_with_ticket("Hello").await;
    c.ws.send(json!({"type": "send", "client_id": "c-2", "text": "card 4111 1111 1111 1111"}))
        .await;
    c.ws.recv_type("blocked").await;
    let blocked = app
        .audit(&format!(
            "action=card_number_blocked&customer={}",
            c.visitor.customer_id
        ))
        .await;
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(blocked[0]["role"], "customer");
    assert_eq!(blocked[0]["object_id"], c.ticket);
    assert!(!blocked[0].to_string().contains("1111"));
}

#[tokio::test]
async fn who_looked_at_a_customer_last_month_is_one_query() {
    let app = TestApp::start().await;
    let approver = app.staff("april", "approver", 5).await;
    let grace = app.agent("grace").await;
    let lead = app.staff("lena", "lead", 5).await;
    let sam = app.staff("sam", "supervisor", 5).await;
    let c = app.customer_with_ticket("Hello").await;
    let other = app.customer_with_ticket("Another").await;
    let month_start = app.clock.now().rfc3339();
    let customer = c.visitor.customer_id;

    app.get(&format!("/api/tickets/{}", c.ticket), Some(&grace.token))
        .await;
    app.get(&format!("/api/customers/{customer}"), Some(&lead.token))
        .await;
    app.get(&format!("/api/tickets/{}", other.ticket), Some(&lead.token))
        .await;
    // A list showing both customers' tickets: one entry, found for either customer.
    let (status, _) = app.get("/api/tickets", Some(&sam.token)).await;
    assert_eq!(status, 200);
    app.clock.advance(31 * DAY);
    let month_end = app.clock.now().rfc3339();
    let lead = app.login("lena").await;
    app.get(&format!("/api/customers/{customer}"), Some(&lead.token))
        .await;

    let approver = app.login(&approver.username).await;
    let query = format!("/api/audit?customer={customer}&from={month_start}&to={month_end}");
    let (status, entries) = app.get(&query, Some(&approver.token)).await;
    assert_eq!(status, 200, "{entries}");
    let who: Vec<(i64, &str)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_i64().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        who,
        vec![
            (sam.id, "ticket_read"),
            (lead.id, "customer_read"),
            (grace.id, "ticket_read")
        ]
    );
    assert_eq!(entries[0]["detail"], "tickets: 2 listed");

    let grace = app.login("grace").await;
    let (status, _) = app.get(&query, Some(&grace.token)).await;
    assert_eq!(status, 403, "agents do not read the audit log");
    for bad in [
        "from=yesterday",
        "action=looked",
        "limit=0",
        "outcome=maybe",
    ] {
        let (status, body) = app
            .get(&format!("/api/audit?{bad}"), Some(&approver.token))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // The question is answered by one query: a range scan of the customer index on the log,
    // and one of the index of listed customers, joined by the log's primary key.
    let pool = SqlitePool::connect(&format!("sqlite://{}?mode=ro", app.db_path().display()))
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query(
        "EXPLAIN QUERY PLAN SELECT * FROM audit_log WHERE 1 = 1 AND (customer_id = ?1 OR seq IN \
         (SELECT seq FROM audit_customers WHERE customer_id = ?1 AND at >= ?2 AND at < ?3)) \
         AND at >= ?2 AND at < ?3 ORDER BY seq DESC LIMIT 100",
    )
    .bind(customer)
    .bind(0)
    .bind(1)
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>("detail"))
    .collect();
    assert!(
        plan.iter().any(|p| p.contains("INDEX audit_customer ")),
        "{plan:?}"
    );
    assert!(
        plan.iter().any(|p| p.contains("audit_customers")),
        "{plan:?}"
    );
    assert!(!plan.iter().any(|p| p == "SCAN audit_log"), "{plan:?}");
}

#[tokio::test]
async fn a_configured_checkpoint_key_lives_outside_the_data_dir_and_must_exist() {
    let secrets = tempfile::tempdir().unwrap();
    let missing = secrets.path().join("missing.key");
    let data = tempfile::tempdir().unwrap();
    let mut config = deskgate::Config {
        data: data.path().to_path_buf(),
        ..Default::default()
    };
    config.audit.key_file = Some(missing.clone());
    let clock: std::sync::Arc<dyn deskgate::clock::Clock> = deskgate::clock::ManualClock::new();
    let err = deskgate::App::build(config, clock)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("missing.key"), "{err}");
    assert!(!missing.exists(), "a configured key is never made up");

    let path = secrets.path().join("audit.key");
    recorder::audit::CheckpointKey::load_or_create(&path).unwrap();
    let configured = path.clone();
    let mut app = TestApp::builder()
        .config(move |c| c.audit.key_file = Some(configured))
        .start()
        .await;
    app.admin().await;
    app.stop().await;
    assert!(
        !app.data_dir().join("keys/audit-checkpoint.key").exists(),
        "no checkpoint key is created under the data dir"
    );
    let (ok, text) = verify(app.data_dir(), &["--key", path.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("1 signed checkpoints"), "{text}");
}

/// A failed second factor at login is audited with the address and user agent of the
/// request, like the password step.
#[tokio::test]
async fn a_failed_mfa_login_carries_where_it_came_from() {
    use verify::totp::{code_at, seed_from_base32};
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let (_, e) = app
        .post("/api/me/mfa/totp", Some(&grace.token), json!({}))
        .await;
    let seed = seed_from_base32(e["secret"].as_str().unwrap()).unwrap();
    let code = code_at(&seed, (app.clock.now().millis() / 1000) as u64);
    let (status, _) = app
        .post(
            "/api/me/mfa/totp/confirm",
            Some(&grace.token),
            json!({"code": code}),
        )
        .await;
    assert_eq!(status, 200);
    let resp = app
        .http
        .post(app.url("/api/session"))
        .header("User-Agent", "e2e-browser/9.9")
        .header("X-Request-Id", "login-7")
        .json(&json!({"username": "grace", "password": PASSWORD, "otp": "000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let failed = app
        .audit(&format!("action=mfa_failed&actor={}", grace.id))
        .await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["ip"], "127.0.0.1");
    assert_eq!(failed[0]["user_agent"], "e2e-browser/9.9");
    assert_eq!(failed[0]["request_id"], "login-7");
    assert_eq!(failed[0]["role"], "agent");
}

/// `audit export --encrypt-to` writes the export sealed with the vault's streaming
/// encryption; `vault open` reads it back; an edited or cut file fails to open.
#[tokio::test]
async fn an_encrypted_export_opens_with_the_keyring_only() {
    let app = stopped_with_entries().await;
    let out_dir = tempfile::tempdir().unwrap();
    let sealed = out_dir.path().join("audit.jsonl.sealed");
    let out = deskgate(
        &["audit", "export", "--encrypt-to", sealed.to_str().unwrap()],
        app.data_dir(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "nothing in clear on stdout");
    let bytes = std::fs::read(&sealed).unwrap();
    assert!(
        !bytes.windows(8).any(|w| w == b"\"action\""),
        "the file is sealed"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sealed).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let open = |path: &Path| {
        let out = deskgate(&["vault", "open", path.to_str().unwrap()], app.data_dir());
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, text, err) = open(&sealed);
    assert!(ok, "{err}");
    let seqs: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=13).collect::<Vec<_>>());
    let exported: String =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'audit_exported'")
            .fetch_one(&db(&app).await)
            .await
            .unwrap();
    assert!(
        exported.contains("entries 1-13; sealed as export:"),
        "{exported}"
    );

    let mut edited = bytes.clone();
    let at = edited.len() - 5;
    edited[at] ^= 1;
    let bad = out_dir.path().join("edited.sealed");
    std::fs::write(&bad, &edited).unwrap();
    let (ok, _, err) = open(&bad);
    assert!(!ok);
    assert!(err.contains("failed to open"), "{err}");
    let cut = out_dir.path().join("cut.sealed");
    std::fs::write(&cut, &bytes[..bytes.len() - 20]).unwrap();
    assert!(!open(&cut).0);
    // An existing file is never overwritten.
    let out = deskgate(
        &["audit", "export", "--encrypt-to", sealed.to_str().unwrap()],
        app.data_dir(),
    );
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&sealed).unwrap(), bytes);
    let (ok, text) = verify(app.data_dir(), &[]);
    assert!(ok, "{text}");
}
