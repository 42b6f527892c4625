//! Abuse limits against the real gateway: logins, new visitors, messages and verification
//! codes per address, visitor and user (429 with Retry-After on HTTP, `error` `rate_limited`
//! on a socket that stays open, and nothing acknowledged is lost); the per-address socket cap;
//! idle sockets; slowloris; body limits; and the client address behind trusted proxies.

use deskgate::limits::Rate;
use deskgate_tests::{Closed, TestApp, PASSWORD};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn login_from(app: &TestApp, xff: Option<&str>, username: &str) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url("/api/session"))
        .json(&json!({"username": username, "password": PASSWORD}));
    if let Some(ip) = xff {
        req = req.header("X-Forwarded-For", ip);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn logins_are_limited_per_address_and_per_username_with_retry_after() {
    let app = TestApp::builder()
        .limits(|l| {
            l.rates.login_per_ip = Rate::new(3, 60);
            l.rates.login_per_user = Rate::new(100, 60);
        })
        .start()
        .await;
    let _ = app.admin().await; // one login
    for _ in 0..2 {
        assert_eq!(login_from(&app, None, "nobody").await.status(), 401);
    }
    let refused = login_from(&app, None, "admin").await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "20");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // The bucket refills on the gateway's clock.
    app.clock.advance(Duration::from_secs(20));
    assert_eq!(login_from(&app, None, "admin").await.status(), 201);

    let app = TestApp::builder()
        .limits(|l| l.rates.login_per_user = Rate::new(2, 300))
        .start()
        .await;
    let _ = app.admin().await;
    assert_eq!(login_from(&app, None, "ADMIN").await.status(), 401);
    // The name is counted whatever its case, and whether or not the password was right.
    let refused = login_from(&app, None, "admin").await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "150");
}

#[tokio::test]
async fn new_visitors_are_limited_per_address() {
    let app = TestApp::builder()
        .limits(|l| l.rates.visitor_per_ip = Rate::new(2, 60))
        .start()
        .await;
    app.visitor().await;
    app.visitor().await;
    let (status, body) = app
        .post("/api/visitor", None, json!({"site_key": "demo"}))
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn switched_off_nothing_is_limited() {
    let app = TestApp::builder()
        .limits(|l| {
            l.rates.visitor_per_ip = Rate::new(1, 3600);
            l.max_connections_per_ip = 1;
            l.enabled = false;
        })
        .start()
        .await;
    let v = app.visitor().await;
    app.visitor().await;
    let (_a, _) = app.customer_ws(&v).await;
    let (_b, _) = app.customer_ws(&v).await;
}

#[tokio::test]
async fn messages_over_the_visitor_limit_get_an_error_and_nothing_acknowledged_is_lost() {
    let app = TestApp::builder()
        .limits(|l| l.rates.messages_per_visitor = Rate::new(3, 60))
        .start()
        .await;
    let v = app.visitor().await;
    let (mut tab1, _) = app.customer_ws(&v).await;
    let (mut tab2, _) = app.customer_ws(&v).await;
    let mut acked = Vec::new();
    for i in 0..3 {
        let ws = if i == 1 { &mut tab2 } else { &mut tab1 };
        let ack = ws
            .request(json!({"type": "send", "client_id": format!("m{i}"), "text": format!("m{i}")}))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        acked.push(ack["seq"].as_i64().unwrap());
    }
    // The fourth, from either tab, is refused with its ref; the socket stays open.
    let refused = tab2
        .request(json!({"type": "send", "client_id": "m3", "text": "m3"}))
        .await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "rate_limited");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("retry in 20 s"),
        "{refused}"
    );
    let pong = tab2.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    // After the wait the same client_id goes through: the refused one was never stored.
    app.clock.advance(Duration::from_secs(20));
    let ack = tab2
        .request(json!({"type": "send", "client_id": "m3", "text": "m3"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["duplicate"], false, "{ack}");
    let ticket = ack["ticket"].as_i64().unwrap();
    let admin = app.admin().await;
    let (_, messages) = app
        .get(
            &format!("/api/tickets/{ticket}/messages"),
            Some(&admin.token),
        )
        .await;
    let seqs: Vec<i64> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4], "{messages}");
}

#[tokio::test]
async fn staff_messages_are_limited_per_user() {
    let app = TestApp::builder()
        .limits(|l| l.rates.messages_per_user = Rate::new(1, 60))
        .start()
        .await;
    let agent = app.agent("grace").await;
    let c = app.customer_with_ticket("hello").await;
    let (mut ws, _) = app.agent_ws(&agent).await;
    let ok = ws
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    assert_eq!(ok["type"], "ok");
    let ack = ws
        .request(json!({"type": "send", "ticket": c.ticket, "client_id": "a1", "text": "hi"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let refused = ws
        .request(json!({"type": "note", "ticket": c.ticket, "client_id": "n1", "text": "note"}))
        .await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
}

#[tokio::test]
async fn verification_codes_are_limited_per_customer() {
    let app = TestApp::builder()
        .limits(|l| l.rates.verify_per_visitor = Rate::new(2, 600))
        .start()
        .await;
    let v = app.visitor().await;
    let (mut ws, _) = app.customer_ws(&v).await;
    for _ in 0..2 {
        let r = ws
            .request(json!({"type": "verify", "challenge": 999, "code": "000000"}))
            .await;
        assert_eq!(r["type"], "error");
        assert_ne!(r["code"], "rate_limited", "{r}");
    }
    let r = ws
        .request(json!({"type": "verify", "challenge": 999, "code": "000000"}))
        .await;
    assert_eq!(r["code"], "rate_limited", "{r}");
}

#[tokio::test]
async fn sockets_beyond_the_per_address_cap_are_closed_with_4013() {
    let app = TestApp::builder()
        .limits(|l| l.max_connections_per_ip = 2)
        .start()
        .await;
    let v = app.visitor().await;
    let (a, _) = app.customer_ws(&v).await;
    let (_b, _) = app.customer_ws(&v).await;
    let mut c = app.connect("/ws/customer").await.unwrap();
    assert_eq!(c.closed().await, Closed::Code(4013));
    // A closed socket frees its place.
    a.close().await;
    let deadline = tokio::time::Instant::now() + deskgate_tests::WAIT;
    loop {
        let mut d = app.connect("/ws/customer").await.unwrap();
        d.send(json!({"type": "hello", "token": v.token})).await;
        match d.recv().await {
            Ok(f) if f["type"] == "welcome" => break,
            _ => assert!(
                tokio::time::Instant::now() < deadline,
                "the place was never freed"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_idle_socket_is_closed_with_4010() {
    let app = TestApp::builder()
        .config(|c| c.limits.idle_timeout = Duration::from_millis(300))
        .start()
        .await;
    let v = app.visitor().await;
    let (mut ws, _) = app.customer_ws(&v).await;
    assert_eq!(ws.closed().await, Closed::Code(4010));
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let app = TestApp::builder()
        .config(|c| c.limits.header_read_timeout = Duration::from_millis(300))
        .start()
        .await;
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // The gateway closes the connection (with or without a 408) instead of waiting forever.
    let read = tokio::time::timeout(deskgate_tests::WAIT, tcp.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the slow client was not cut off");
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // Meanwhile a normal request is served.
    let (status, _) = app.get("/healthz", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_oversized_body_gets_413() {
    let app = TestApp::builder()
        .config(|c| c.limits.max_body_bytes = 2048)
        .start()
        .await;
    let (status, body) = app
        .post(
            "/api/session",
            None,
            json!({"username": "x".repeat(4096), "password": "p"}),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "too_large");
}

/// The address of the newest audit entry of `action`, read from the store (an API read would
/// log in, and count against the limits under test).
async fn last_ip(app: &TestApp, action: &str) -> String {
    let records = app.app.store.audit_after(0, 10_000).await.unwrap();
    let r = records
        .iter()
        .rev()
        .find(|r| r.entry.action == action)
        .expect("an entry of that action");
    r.entry.ip.clone().unwrap_or_default()
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    // Untrusted: the header is ignored, the socket's address is the client.
    let app = TestApp::builder()
        .limits(|l| l.rates.login_per_ip = Rate::new(2, 3600))
        .start()
        .await;
    login_from(&app, Some("203.0.113.7"), "nobody").await;
    assert_eq!(last_ip(&app, "login_failed").await, "127.0.0.1");
    // Another forged address does not buy more attempts.
    login_from(&app, Some("203.0.113.8"), "nobody").await;
    assert_eq!(
        login_from(&app, Some("203.0.113.9"), "nobody")
            .await
            .status(),
        429
    );

    let app = TestApp::builder()
        .config(|c| {
            c.trusted_proxies = vec![deskgate::proxy::parse_cidr("127.0.0.0/8").unwrap()];
        })
        .limits(|l| l.rates.login_per_ip = Rate::new(2, 3600))
        .start()
        .await;
    let _ = app.admin().await; // from 127.0.0.1 itself
                               // The client forged the first entry; the proxy appended the real address.
    login_from(&app, Some("198.51.100.1, 203.0.113.7"), "nobody").await;
    assert_eq!(last_ip(&app, "login_failed").await, "203.0.113.7");
    assert_eq!(
        login_from(&app, Some("203.0.113.7"), "nobody")
            .await
            .status(),
        401
    );
    assert_eq!(
        login_from(&app, Some("203.0.113.7"), "nobody")
            .await
            .status(),
        429
    );
    // Another client behind the same proxy has its own bucket.
    assert_eq!(
        login_from(&app, Some("192.0.2.50"), "nobody")
            .await
            .status(),
        401
    );
}
