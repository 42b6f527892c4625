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

/// The answer's status, whether its body is the API's JSON error body, and the body.
async fn raw(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let text = resp.text().await.unwrap();
    assert!(json, "{status}: not JSON: {text}");
    let body: Value = serde_json::from_str(&text).expect("a JSON body");
    (status, body)
}

async fn openapi(app: &TestApp) -> Value {
    let resp = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap()
}

#[tokio::test]
async fn an_unparsable_path_id_or_query_gets_the_json_error_naming_the_field_not_the_value() {
    let app = TestApp::start().await;
    let admin = app.admin().await;
    let doc = openapi(&app).await;
    let cases = [
        ("/api/tickets/4111111111111111x", "/api/tickets/{id}", "id"),
        (
            "/api/grants/abc/transcript",
            "/api/grants/{id}/transcript",
            "id",
        ),
        (
            "/api/grants/1/attachments/-",
            "/api/grants/{grant}/attachments/{id}",
            "id",
        ),
        (
            "/api/tickets?limit=4111111111111111x",
            "/api/tickets",
            "limit",
        ),
        ("/api/audit?limit=ten", "/api/audit", "limit"),
        (
            "/api/tickets?status=4111111111111111x",
            "/api/tickets",
            "status",
        ),
    ];
    for (url, path, field) in cases {
        let resp = app
            .http
            .get(app.url(url))
            .bearer_auth(&admin.token)
            .send()
            .await
            .unwrap();
        let (status, body) = raw(resp).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["error"]["code"], "invalid", "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{url}: {message}");
        assert!(
            !message.contains("4111"),
            "{url}: the value is quoted: {message}"
        );
        assert!(
            doc["paths"][path]["get"]["responses"]["400"]["content"]["application/json"]
                .is_object(),
            "{path}: 400 is not documented with the error body"
        );
    }
}

#[tokio::test]
async fn a_malformed_json_body_gets_the_json_error_with_a_documented_status() {
    let app = TestApp::start().await;
    let admin = app.admin().await;
    let doc = openapi(&app).await;
    let patch = |body: &'static str, content_type: Option<&'static str>| {
        let mut req = app
            .http
            .patch(app.url("/api/tickets/1"))
            .bearer_auth(&admin.token)
            .body(body);
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        req.send()
    };
    for (body, content_type) in [
        ("{\"priority\": ", Some("application/json")),
        ("{\"priority\": 4111111111111111}", Some("application/json")),
        ("{\"priority\": \"high\"}", None),
    ] {
        let (status, err) = raw(patch(body, content_type).await.unwrap()).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["code"], "invalid", "{body}: {err}");
        assert!(!err.to_string().contains("4111"), "{err}");
    }
    let documented = &doc["paths"]["/api/tickets/{id}"]["patch"]["responses"];
    for status in ["400", "401", "413"] {
        assert!(
            documented[status]["content"]["application/json"].is_object(),
            "PATCH /api/tickets/{{id}}: {status} is not documented: {documented}"
        );
    }
}

#[tokio::test]
async fn every_operation_documents_its_malformed_input_and_missing_token_answers() {
    let app = TestApp::start().await;
    let doc = openapi(&app).await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = &op["responses"];
            let params = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["in"] == "path" || p["in"] == "query");
            let json_body = op["requestBody"]["content"]["application/json"].is_object();
            if params || json_body {
                assert!(responses["400"].is_object(), "{method} {path}: no 400");
            }
            if json_body {
                assert!(responses["413"].is_object(), "{method} {path}: no 413");
            }
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                assert!(responses["401"].is_object(), "{method} {path}: no 401");
                assert!(responses["503"].is_object(), "{method} {path}: no 503");
            }
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} operations");
}

#[tokio::test]
async fn an_unknown_path_or_method_gets_the_json_error_body() {
    let app = TestApp::start().await;
    let admin = app.admin().await;
    for path in ["/api/no-such-thing", "/api/tickets/1/nope", "/nothing-here"] {
        let resp = app
            .http
            .get(app.url(path))
            .bearer_auth(&admin.token)
            .send()
            .await
            .unwrap();
        let (status, body) = raw(resp).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
    }
    let resp = app
        .http
        .delete(app.url("/api/queue"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    let allow = resp
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (status, body) = raw(resp).await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    assert!(allow.contains("GET"), "Allow: {allow:?}");
}
