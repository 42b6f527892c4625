//! What the supervisor console reads from the gateway, through the real server: the audit
//! chain's status (the same verdict as `deskgate audit verify`, tampering named, allowed only
//! to approvers and admins, itself audited), the limits of access requests and the gateway's
//! clock in grant views.

use crate::config::deskgate_binary;
use deskgate::clock::Clock;
use deskgate_tests::{Staff, TestApp};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

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

#[tokio::test]
async fn the_request_form_reads_the_limits_the_gateway_enforces() {
    let app = TestApp::builder()
        .config(|c| {
            c.grants.max_duration = Duration::from_secs(2 * 3600);
            c.grants.pending_ttl = Duration::from_secs(12 * 3600);
        })
        .start()
        .await;
    let (status, _) = app.get("/api/grants/policy", None).await;
    assert_eq!(status, 401);
    let sam = app.staff("sam", "supervisor", 5).await;
    let (status, p) = app.get("/api/grants/policy", Some(&sam.token)).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        p,
        json!({"default_duration_minutes": 60, "max_duration_minutes": 120,
               "pending_ttl_minutes": 720, "reason_min": 10, "reason_max": 500})
    );
    // The cap it names is the one a request meets.
    let agent = app.agent("closer").await;
    let (mut ws, _) = app.agent_ws(&agent).await;
    let mut c = app.customer_with_ticket("Where is my parcel").await;
    ws.request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    ws.request(json!({"type": "resolve", "ticket": c.ticket}))
        .await;
    c.ws.recv_type("ticket").await;
    app.clock.advance(Duration::from_secs(73 * 3600));
    app.close_resolved().await;
    let sam = app.login("sam").await;
    let ask = |minutes: u64| {
        json!({"kind": "transcript", "object": c.ticket, "duration_minutes": minutes,
               "reason": "a dispute needs the chat record"})
    };
    let (status, body) = app.post("/api/grants", Some(&sam.token), ask(121)).await;
    assert_eq!(status, 400, "{body}");
    let (status, g) = app.post("/api/grants", Some(&sam.token), ask(120)).await;
    assert_eq!(status, 201, "{g}");

    // Views carry the gateway's clock, so a console counts down against it.
    let now = app.clock.now();
    assert_eq!(g["now"], now.rfc3339(), "{g}");
    let april = app.staff("april", "approver", 5).await;
    let (status, g) = app
        .post(
            &format!("/api/grants/{}/approve", g["id"]),
            Some(&april.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{g}");
    app.clock.advance(Duration::from_secs(60));
    let (status, t) = app
        .get(
            &format!("/api/grants/{}/transcript", g["id"]),
            Some(&sam.token),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["expires_at"], g["expires_at"]);
    assert_eq!(t["now"], app.clock.now().rfc3339());
    let (_, list) = app.get("/api/grants", Some(&sam.token)).await;
    assert_eq!(list[0]["now"], app.clock.now().rfc3339());
}
