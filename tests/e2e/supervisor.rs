//! What the supervisor console reads from the gateway, through the real server: the audit
//! chain's status (the same verdict as `deskgate audit verify`, tampering named, allowed only
//! to approvers and admins, itself audited).

use crate::config::deskgate_binary;
use deskgate_tests::{Staff, TestApp};
use serde_json::Value;
use std::process::Command;

async fn chain(app: &TestApp, who: &Staff) -> Value {
    let (status, body) = app.get("/api/audit/status", Some(&who.token)).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn the_chain_status_agrees_with_the_cli_and_names_a_tampered_entry() {
    let app = TestApp::builder()
        .config(|c| c.audit.checkpoint_every = 4)
        .start()
        .await;
    let admin = app.admin().await;
    for name in ["ana", "ben", "cai"] {
        app.agent(name).await;
    }
    let (_, head) = app.get("/api/audit?limit=1", Some(&admin.token)).await;
    // That query is itself the next entry; the status check reads up to it.
    let entries = head[0]["seq"].as_i64().unwrap() + 1;
    let s = chain(&app, &admin).await;
    assert_eq!(s["status"], "ok", "{s}");
    assert_eq!(s["entries"], entries, "{s}");
    // A checkpoint every 4 entries (the minute sweep may have signed one more).
    let last = s["last_checkpoint"].as_i64().unwrap();
    assert!(last >= entries / 4 * 4 && last <= entries, "{s}");
    assert!(s["checkpoints"].as_i64().unwrap() >= entries / 4, "{s}");
    assert_eq!(s["unsigned"], entries - last, "{s}");
    assert_eq!(s["key_id"], app.app.auditor.key_id());
    assert!(s["first_bad_entry"].is_null() && s["problem"].is_null());

    // The check is itself an entry, and the command line sees the same log.
    let trail = app.audit("action=audit_read&limit=5").await;
    let own = trail
        .iter()
        .find(|e| {
            e["detail"]
                .as_str()
                .unwrap_or("")
                .starts_with("chain status: ok")
        })
        .expect("the status check is audited");
    assert_eq!(own["actor"], admin.id);
    let out = Command::new(deskgate_binary())
        .args(["audit", "verify", "--data"])
        .arg(app.data_dir())
        .env_remove("DESKGATE_AUDIT_KEY_FILE")
        .env_remove("DESKGATE_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("audit log ok: "), "{text}");

    // Someone edits an entry in the database behind the gateway's back.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", app.db_path().display()))
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET actor_id = 999 WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    let s = chain(&app, &admin).await;
    assert_eq!(s["status"], "broken", "{s}");
    assert_eq!(s["first_bad_entry"], 3, "{s}");
    assert!(
        s["problem"].as_str().unwrap().starts_with("entry 3:"),
        "{s}"
    );
    let trail = app.audit("action=audit_read&limit=5").await;
    assert!(
        trail
            .iter()
            .any(|e| e["detail"] == "chain status: broken at entry 3"),
        "{trail:?}"
    );
}

#[tokio::test]
async fn only_approvers_and_admins_read_the_chain_status() {
    let app = TestApp::start().await;
    let (status, body) = app.get("/api/audit/status", None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = app.get("/api/audit/status", Some("not-a-token")).await;
    assert_eq!(status, 401);
    for (name, role) in [("ana", "agent"), ("lee", "lead"), ("sam", "supervisor")] {
        let who = app.staff(name, role, 5).await;
        let (status, body) = app.get("/api/audit/status", Some(&who.token)).await;
        assert_eq!(status, 403, "{role}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
        let denied = app
            .audit(&format!(
                "action=audit_read&outcome=denied&actor={}",
                who.id
            ))
            .await;
        assert_eq!(denied.len(), 1, "{role}: the refusal is audited");
        assert_eq!(denied[0]["detail"], "chain status");
    }
    let april = app.staff("april", "approver", 5).await;
    assert_eq!(chain(&app, &april).await["status"], "ok");
    let admin = app.admin().await;
    assert_eq!(chain(&app, &admin).await["status"], "ok");
}
