//! Bad input gets a clear error and loses nothing: malformed and unknown frames, bad text,
//! oversized frames, floods, missing or wrong credentials, frames from the wrong side.

use deskgate_tests::{Closed, TestApp, WsClient};
use futures_util::SinkExt;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const QUIET: Duration = Duration::from_millis(300);

/// The connection still answers.
async fn assert_open(ws: &mut WsClient) {
    let pong = ws.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "{pong}");
}

/// Sends raw text and returns the `error` it draws.
async fn error_for(ws: &mut WsClient, raw: &str) -> Value {
    ws.send_raw(raw.to_string()).await;
    ws.recv_type("error").await
}

async fn customer(app: &TestApp) -> WsClient {
    let v = app.visitor().await;
    app.customer_ws(&v).await.0
}

#[tokio::test]
async fn malformed_json_gets_invalid_frame_and_the_connection_stays_open() {
    let app = TestApp::start().await;
    let mut ws = customer(&app).await;
    let err = error_for(&mut ws, "{\"type\": \"send\", nope").await;
    assert_eq!(err["code"], "invalid_frame");
    assert!(err["message"].as_str().unwrap().contains("JSON"), "{err}");
    assert_open(&mut ws).await;
}

#[tokio::test]
async fn a_json_array_is_not_a_frame() {
    let app = TestApp::start().await;
    let mut ws = customer(&app).await;
    let err = error_for(&mut ws, r#"[{"type": "ping"}]"#).await;
    assert_eq!(err["code"], "invalid_frame");
    let err = error_for(&mut ws, r#""ping""#).await;
    assert_eq!(err["code"], "invalid_frame");
    assert_open(&mut ws).await;
}

#[tokio::test]
async fn an_unknown_type_gets_unknown_type_with_the_ref_echoed() {
    let app = TestApp::start().await;
    let mut ws = customer(&app).await;
    let err = error_for(&mut ws, r#"{"type": "teleport", "ref": "x-9"}"#).await;
    assert_eq!(err["code"], "unknown_type");
    assert_eq!(err["ref"], "x-9");
    let err = error_for(&mut ws, r#"{"ref": "x-10", "text": "no type"}"#).await;
    assert_eq!(err["code"], "invalid_frame");
    assert_eq!(err["ref"], "x-10");
    assert_open(&mut ws).await;
}

#[tokio::test]
async fn a_missing_or_ill_typed_field_gets_invalid_frame_naming_no_value() {
    let app = TestApp::start().await;
    let mut ws = customer(&app).await;
    let err = error_for(
        &mut ws,
        r#"{"type": "send", "ref": "m1", "client_id": "c-1"}"#,
    )
    .await;
    assert_eq!(err["code"], "invalid_frame");
    assert_eq!(err["ref"], "m1");
    assert!(err["message"].as_str().unwrap().contains("`text`"), "{err}");

    let err = error_for(
        &mut ws,
        r#"{"type": "send", "client_id": "c-1", "text": 4111111111111111}"#,
    )
    .await;
    assert_eq!(err["code"], "invalid_frame");
    assert!(!err.to_string().contains("4111"), "echoed the value: {err}");

    let long_ref = "r".repeat(65);
    let err = error_for(
        &mut ws,
        &json!({"type": "ping", "ref": long_ref}).to_string(),
    )
    .await;
    assert_eq!(err["code"], "invalid_frame");
    assert_open(&mut ws).await;

    // Nothing of it was stored: the first real message opens ticket seq 1.
    let ack = ws.send_text(None, "c-1", "hello").await;
    assert_eq!(ack["seq"], 1);
}

#[tokio::test]
async fn blank_and_overlong_text_get_invalid_text_and_store_nothing() {
    let app = TestApp::start().await;
    let mut ws = customer(&app).await;
    for text in ["", "   \n\t ", &"x".repeat(8001)] {
        // Raw: the published schema already refuses these client frames.
        let frame = json!({"type": "send", "ref": "t", "client_id": "c-1", "text": text});
        let err = error_for(&mut ws, &frame.to_string()).await;
        assert_eq!(err["code"], "invalid_text");
        assert_eq!(err["ref"], "t");
    }
    // 8,000 characters are fine, however many bytes they take.
    let ack = ws.send_text(None, "c-1", &"ж".repeat(8000)).await;
    assert_eq!(ack["seq"], 1);
    assert_eq!(ack["duplicate"], false);
}

#[tokio::test]
async fn a_binary_frame_gets_invalid_frame_and_the_connection_stays_open() {
    let app = TestApp::start().await;
    let mut ws = customer(&app).await;
    ws.stream
        .send(Message::Binary(b"{\"type\":\"ping\"}".to_vec().into()))
        .await
        .unwrap();
    let err = ws.recv_type("error").await;
    assert_eq!(err["code"], "invalid_frame");
    assert_open(&mut ws).await;
}

#[tokio::test]
async fn an_oversized_hello_is_closed_with_1009() {
    let app = TestApp::builder().max_frame_bytes(4096).start().await;
    let mut ws = app.connect("/ws/customer").await.unwrap();
    let token = "t".repeat(5000);
    ws.send_raw(json!({"type": "hello", "token": token}).to_string())
        .await;
    assert_eq!(ws.closed().await, Closed::Code(1009));
}

#[tokio::test]
async fn a_frame_over_the_limit_gets_too_large_then_close_1009() {
    let app = TestApp::builder().max_frame_bytes(4096).start().await;
    let mut bystander = customer(&app).await;
    let mut ws = customer(&app).await;
    let text = "x".repeat(5000);
    ws.send_raw(json!({"type": "send", "client_id": "big", "text": text}).to_string())
        .await;
    assert_eq!(ws.closed().await, Closed::Code(1009));
    let frames = ws.take_pending();
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "error" && f["code"] == "too_large"),
        "{frames:?}"
    );
    assert!(!frames.iter().any(|f| f["type"] == "ack"), "{frames:?}");
    assert_open(&mut bystander).await;
    // Just under the limit is fine.
    let ack = bystander.send_text(None, "ok", &"y".repeat(3900)).await;
    assert_eq!(ack["seq"], 1);
}

#[tokio::test]
async fn a_flood_gets_rate_limited_then_close_4008_and_others_carry_on() {
    let app = TestApp::builder().rate(5, 5).start().await;
    let mut bystander = customer(&app).await;
    let mut ws = customer(&app).await;
    for i in 0..30 {
        ws.send_raw(json!({"type": "ping", "ref": format!("p{i}")}).to_string())
            .await;
    }
    assert_eq!(ws.closed().await, Closed::Code(4008));
    let frames = ws.take_pending();
    let pongs = frames.iter().filter(|f| f["type"] == "pong").count();
    assert!(pongs < 30, "no limit applied: {pongs} pongs");
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "error" && f["code"] == "rate_limited"),
        "{frames:?}"
    );

    assert_open(&mut bystander).await;
    let ack = bystander.send_text(None, "c-1", "I am fine").await;
    assert_eq!(ack["seq"], 1);
}

#[tokio::test]
async fn no_hello_in_time_closes_4001() {
    let app = TestApp::builder()
        .hello_timeout(Duration::from_millis(300))
        .start()
        .await;
    let mut ws = app.connect("/ws/customer").await.unwrap();
    assert_eq!(ws.closed().await, Closed::Code(4001));
    assert!(ws.take_pending().is_empty());
}

#[tokio::test]
async fn anything_but_hello_first_closes_4001() {
    let app = TestApp::start().await;
    let mut ws = app.connect("/ws/agent").await.unwrap();
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.closed().await, Closed::Code(4001));
    assert!(ws.take_pending().is_empty(), "nothing served before hello");
}

#[tokio::test]
async fn an_unknown_token_closes_4001_and_serves_nothing() {
    let app = TestApp::start().await;
    let visitor = app.visitor().await;
    let grace = app.agent("grace").await;
    for (path, token) in [
        ("/ws/customer", "dgv_not-a-token"),
        ("/ws/agent", "dgs_not-a-token"),
        // A visitor token is no staff token, and the other way round.
        ("/ws/agent", visitor.token.as_str()),
        ("/ws/customer", grace.token.as_str()),
    ] {
        let (closed, frames) = app.hello_refused(path, token).await;
        assert_eq!(closed, Closed::Code(4001), "{path}");
        assert!(frames.is_empty(), "{path}: {frames:?}");
    }
}

#[tokio::test]
async fn an_expired_visitor_token_closes_4001() {
    let app = TestApp::builder()
        .visitor_ttl(Duration::from_secs(3600))
        .start()
        .await;
    let visitor = app.visitor().await;
    app.customer_ws(&visitor).await;
    app.clock.advance(Duration::from_secs(3601));
    let (closed, frames) = app.hello_refused("/ws/customer", &visitor.token).await;
    assert_eq!(closed, Closed::Code(4001));
    assert!(frames.is_empty(), "{frames:?}");
}

#[tokio::test]
async fn an_expired_staff_session_closes_4001_and_fails_the_api() {
    let app = TestApp::builder()
        .session_ttl(Duration::from_secs(3600))
        .start()
        .await;
    let grace = app.agent("grace").await;
    assert_eq!(app.get("/api/me", Some(&grace.token)).await.0, 200);
    app.clock.advance(Duration::from_secs(3601));
    let (closed, frames) = app.hello_refused("/ws/agent", &grace.token).await;
    assert_eq!(closed, Closed::Code(4001));
    assert!(frames.is_empty(), "{frames:?}");
    assert_eq!(app.get("/api/me", Some(&grace.token)).await.0, 401);
}

#[tokio::test]
async fn an_upgrade_without_the_subprotocol_is_refused_with_400() {
    let app = TestApp::start().await;
    for path in ["/ws/customer", "/ws/agent"] {
        let url = format!("ws://{}{}", app.addr, path);
        let err = WsClient::connect(&url, None)
            .await
            .err()
            .expect("upgrade must be refused");
        assert!(err.to_string().contains("400"), "{path}: {err}");
        let err = WsClient::connect(&url, Some("deskgate.v2"))
            .await
            .err()
            .expect("unknown version must be refused");
        assert!(err.to_string().contains("400"), "{path}: {err}");
    }
}

#[tokio::test]
async fn a_customer_sending_agent_frames_gets_forbidden() {
    let app = TestApp::start().await;
    let mut c = app.customer_with_ticket("Hello").await;
    for frame in [
        json!({"type": "claim", "ticket": c.ticket}),
        json!({"type": "resolve", "ticket": c.ticket}),
        json!({"type": "note", "ticket": c.ticket, "client_id": "n", "text": "psst"}),
        json!({"type": "transfer", "ticket": c.ticket, "to": null}),
    ] {
        let err = c.ws.request(frame.clone()).await;
        assert_eq!(err["type"], "error", "{frame}");
        assert_eq!(err["code"], "forbidden", "{frame}");
    }
    let admin = app.admin().await;
    let (_, detail) = app
        .get(&format!("/api/tickets/{}", c.ticket), Some(&admin.token))
        .await;
    assert_eq!(detail["ticket"]["status"], "queued");
    assert!(detail["notes"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn an_agent_acting_on_a_ticket_not_theirs_gets_not_found() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let bob = app.agent("bob").await;
    let (mut g, _) = app.agent_ws(&grace).await;
    let (mut b, _) = app.agent_ws(&bob).await;
    let mut c = app.customer_with_ticket("Hello").await;

    // Queued, not assigned to anyone.
    let err = b
        .request(json!({"type": "send", "ticket": c.ticket, "client_id": "b-1", "text": "hi"}))
        .await;
    assert_eq!(err["code"], "not_found");

    g.request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    let theirs = b
        .request(json!({"type": "send", "ticket": c.ticket, "client_id": "b-2", "text": "hi"}))
        .await;
    let missing = b
        .request(json!({"type": "send", "ticket": 999999, "client_id": "b-3", "text": "hi"}))
        .await;
    assert_eq!(theirs["code"], "not_found");
    assert_eq!(
        theirs["message"], missing["message"],
        "someone else's ticket looks like a missing one"
    );
    for frame in [
        json!({"type": "resolve", "ticket": c.ticket}),
        json!({"type": "transfer", "ticket": c.ticket, "to": null}),
    ] {
        let err = b.request(frame.clone()).await;
        assert_eq!(err["code"], "not_found", "{frame}");
    }
    // Reading someone else's ticket is refused outright (and audited).
    let err = b
        .request(json!({"type": "sync", "ticket": c.ticket, "after": 0}))
        .await;
    assert_eq!(err["code"], "forbidden");
    let err = b
        .request(json!({"type": "typing", "ticket": c.ticket, "active": true}))
        .await;
    assert_eq!(err["code"], "not_found");

    let frames = c.ws.drain(QUIET).await;
    assert!(
        !frames
            .iter()
            .any(|f| f["type"] == "typing" || f["text"] == "hi"),
        "{frames:?}"
    );
}

#[tokio::test]
async fn a_second_hello_is_refused_and_the_connection_stays_open() {
    let app = TestApp::start().await;
    let visitor = app.visitor().await;
    let (mut ws, _) = app.customer_ws(&visitor).await;
    let err = ws
        .request(json!({"type": "hello", "token": visitor.token}))
        .await;
    assert_eq!(err["code"], "invalid_frame");
    assert_open(&mut ws).await;
}

#[tokio::test]
async fn typing_or_reading_without_a_conversation_gets_not_found() {
    let app = TestApp::start().await;
    let mut ws = customer(&app).await;
    let err = ws.request(json!({"type": "typing", "active": true})).await;
    assert_eq!(err["code"], "not_found");
    let err = ws.request(json!({"type": "read", "seq": 1})).await;
    assert_eq!(err["code"], "not_found");
    assert_open(&mut ws).await;
}
