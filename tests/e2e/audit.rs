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
    Command::new(deskgate_binary())
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("DESKGATE_AUDIT_KEY_FILE")
        .env_remove("DESKGATE_CONFIG")
        .output()
        .unwrap()
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
    let rows = sqlx::query("SELECT * FROM audit_log ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut prev = GENESIS;
    for r in &rows {
        let seq: i64 = r.get("seq");
        let hash = entry_from_row(r).chain_hash(seq, &prev);
        sqlx::query("UPDATE audit_log SET hash = ? WHERE seq = ?")
            .bind(&hash[..])
            .bind(seq)
            .execute(&pool)
            .await
            .unwrap();
        prev = hash;
    }
    let text = assert_broken_at(&app, 5);
    assert!(text.contains("checkpoint signed at entry 8"), "{text}");
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
    for args in [
        vec!["--public-key", public.to_str().unwrap()],
        vec!["--key", path.to_str().unwrap()],
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
        vec![(lead.id, "customer_read"), (grace.id, "ticket_read")]
    );

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

    // The question is answered by one range scan of the customer index.
    let pool = SqlitePool::connect(&format!("sqlite://{}?mode=ro", app.db_path().display()))
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query(
        "EXPLAIN QUERY PLAN SELECT * FROM audit_log WHERE customer_id = ? AND at >= ? AND at < ? \
         ORDER BY seq DESC LIMIT 100",
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
        plan.iter()
            .any(|p| p.contains("USING INDEX audit_customer")),
        "{plan:?}"
    );
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
