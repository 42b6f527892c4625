//! The REST API around the live part: ticket lists, probes, metrics and the OpenAPI document.

use deskgate_tests::{metric, TestApp};
use serde_json::{json, Value};

fn ids(list: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn an_agent_lists_queued_tickets_and_their_own_only() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let bob = app.agent("bob").await;
    let lead = app.staff("lina", "lead", 5).await;
    let (mut g, _) = app.agent_ws(&grace).await;
    let (mut b, _) = app.agent_ws(&bob).await;
    let mine = app.customer_with_ticket("for grace").await;
    let theirs = app.customer_with_ticket("for bob").await;
    let queued = app.customer_with_ticket("for anyone").await;
    g.request(json!({"type": "claim", "ticket": mine.ticket}))
        .await;
    b.request(json!({"type": "claim", "ticket": theirs.ticket}))
        .await;

    let (status, list) = app.get("/api/tickets", Some(&grace.token)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(ids(&list), vec![mine.ticket, queued.ticket]);
    let (_, list) = app.get("/api/tickets", Some(&lead.token)).await;
    assert_eq!(ids(&list), vec![mine.ticket, theirs.ticket, queued.ticket]);
    let (_, list) = app
        .get("/api/tickets?status=queued", Some(&lead.token))
        .await;
    assert_eq!(ids(&list), vec![queued.ticket]);

    for path in [
        format!("/api/tickets/{}", theirs.ticket),
        format!("/api/tickets/{}/messages", theirs.ticket),
        format!("/api/tickets/{}/notes", theirs.ticket),
    ] {
        let (status, _) = app.get(&path, Some(&grace.token)).await;
        assert_eq!(status, 403, "someone else's ticket is refused: {path}");
    }
    let (status, messages) = app
        .get(
            &format!("/api/tickets/{}/messages", mine.ticket),
            Some(&grace.token),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(messages[0]["text"], "for grace");

    assert_eq!(app.get("/api/tickets", None).await.0, 401);
    assert_eq!(app.get("/api/tickets", Some("dgs_nope")).await.0, 401);
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = TestApp::start().await;
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    let c = app.customer_with_ticket("Hello").await;
    let text = app.metrics().await;
    assert_eq!(metric(&text, "deskgate_customer_connections"), Some(1.0));
    assert_eq!(metric(&text, "deskgate_agent_connections"), Some(0.0));
    assert_eq!(metric(&text, "deskgate_queue_depth"), Some(1.0));
    assert_eq!(metric(&text, "deskgate_messages_stored_total"), Some(1.0));
    assert!(text.contains("# TYPE deskgate_relay_latency_seconds histogram"));

    let grace = app.agent("grace").await;
    let (_agent, _) = app.agent_ws(&grace).await;
    let text = app.metrics().await;
    assert_eq!(metric(&text, "deskgate_customer_connections"), Some(1.0));
    assert_eq!(metric(&text, "deskgate_agent_connections"), Some(1.0));
    drop(c);
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let app = TestApp::start().await;
    let resp = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let doc: Value = serde_json::from_str(&resp.text().await.unwrap()).expect("JSON");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/api/session",
        "/api/visitor",
        "/api/tickets",
        "/api/tickets/{id}",
        "/api/customers/{id}/tickets",
        "/api/users",
        "/api/queue",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
}

#[tokio::test]
async fn bad_request_bodies_get_a_clear_400() {
    let app = TestApp::start().await;
    let resp = app
        .http
        .post(app.url("/api/session"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid");

    let (status, body) = app
        .post("/api/session", None, json!({"username": "grace"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{body}"
    );
    let (status, _) = app
        .post("/api/visitor", None, json!({"site_key": "no-such-site"}))
        .await;
    assert_eq!(status, 404);
}
