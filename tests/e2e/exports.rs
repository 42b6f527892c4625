//! Customer data leaving the console: a copy out of a ticket or an exported transcript is
//! written to the audit log (who, which ticket and customer, where from, how long; never the
//! text) before the console says it is recorded; someone else's ticket is refused and audited.

use deskgate_tests::TestApp;
use serde_json::json;

#[tokio::test]
async fn copies_and_exports_are_audited_without_their_text() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let opened = app
        .customer_with_ticket("My card ends 4242, parcel is late")
        .await;
    let (mut ws, _) = app.agent_ws(&grace).await;
    let r = ws
        .request(json!({"type": "claim", "ticket": opened.ticket}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    let path = format!("/api/tickets/{}/exports", opened.ticket);

    let (status, body) = app
        .post(
            &path,
            Some(&grace.token),
            json!({"kind": "copy", "source": "transcript", "chars": 21}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["action"], "customer_data_copied");
    let seq = body["audit_seq"].as_i64().unwrap();
    let (status, body) = app
        .post(&path, Some(&grace.token), json!({"kind": "transcript"}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["action"], "transcript_exported");
    assert!(body["audit_seq"].as_i64().unwrap() > seq);

    let copied = app.audit("action=customer_data_copied").await;
    assert_eq!(copied.len(), 1, "{copied:?}");
    let e = &copied[0];
    assert_eq!(e["outcome"], "allowed");
    assert_eq!(e["actor"], grace.id, "{e}");
    assert_eq!(e["role"], "agent");
    assert_eq!(e["customer"], opened.visitor.customer_id, "{e}");
    assert_eq!(e["object_kind"], "ticket");
    assert_eq!(e["object_id"], opened.ticket);
    assert_eq!(e["detail"], "source=transcript; chars=21");
    assert_eq!(e["seq"], seq);
    let exported = app.audit("action=transcript_exported").await;
    assert_eq!(exported.len(), 1, "{exported:?}");
    assert!(!exported[0].to_string().contains("4242"));
}

#[tokio::test]
async fn someone_elses_ticket_is_refused_and_the_refusal_audited() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let hopper = app.agent("hopper").await;
    let opened = app.customer_with_ticket("Hello").await;
    let (mut ws, _) = app.agent_ws(&grace).await;
    ws.request(json!({"type": "claim", "ticket": opened.ticket}))
        .await;
    let path = format!("/api/tickets/{}/exports", opened.ticket);
    let (status, body) = app
        .post(&path, Some(&hopper.token), json!({"kind": "transcript"}))
        .await;
    assert_eq!(status, 403, "{body}");
    let denied = app.audit("action=transcript_exported").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["outcome"], "denied");
    assert_eq!(denied[0]["actor"], hopper.id);

    // Bad input: a copy without its source, an unknown kind, no login.
    let (status, body) = app
        .post(&path, Some(&grace.token), json!({"kind": "copy"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("source"));
    let (status, _) = app
        .post(&path, Some(&grace.token), json!({"kind": "screenshot"}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = app.post(&path, None, json!({"kind": "transcript"})).await;
    assert_eq!(status, 401);
    let (status, _) = app
        .post(
            "/api/tickets/999/exports",
            Some(&grace.token),
            json!({"kind": "transcript"}),
        )
        .await;
    assert_eq!(status, 404);
}
