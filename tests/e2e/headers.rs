//! Browser security: the headers of pages and API answers, staff API calls from other pages
//! refused, and staff sessions' idle timeout and "log out everywhere".

use deskgate_tests::{Closed, TestApp};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

const EVIL: &str = "https://evil.example";

#[tokio::test]
async fn pages_and_api_answers_carry_the_security_headers() {
    let app = TestApp::start().await;
    for path in ["/", "/console", "/supervisor", "/demo"] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["cross-origin-opener-policy"], "same-origin", "{path}");
        let pp = h["permissions-policy"].to_str().unwrap();
        assert!(
            pp.contains("camera=()") && pp.contains("geolocation=()"),
            "{path}: {pp}"
        );
        // Plain HTTP: no HSTS (it would be ignored, and it would lie).
        assert!(h.get("strict-transport-security").is_none(), "{path}");
    }
    let r = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    let h = r.headers();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
}

#[tokio::test]
async fn a_staff_api_call_from_another_page_is_refused_even_with_a_token() {
    let app = TestApp::start().await;
    let admin = app.admin().await;
    // Sessions are bearer tokens, never cookies: a login sets none.
    let r = app
        .http
        .post(app.url("/api/session"))
        .json(&json!({"username": "admin", "password": deskgate_tests::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("set-cookie").is_none());

    let r = app
        .http
        .get(app.url("/api/me"))
        .header("Origin", EVIL)
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = app
        .request_from(
            EVIL,
            Method::POST,
            "/api/session",
            Some(json!({"username": "admin", "password": deskgate_tests::PASSWORD})),
        )
        .await;
    assert_eq!(r.status(), 403);
    // The second-factor endpoints, which an enrolment-only session opens too.
    let mfa = [
        (Method::GET, "/api/me/mfa", None),
        (Method::POST, "/api/me/mfa/totp", None),
        (
            Method::POST,
            "/api/me/mfa/totp/confirm",
            Some(json!({"code": "123456"})),
        ),
    ];
    for (method, path, body) in mfa {
        let mut req = app
            .http
            .request(method, app.url(path))
            .header("Origin", EVIL)
            .bearer_auth(&admin.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
        assert!(r.headers().get("access-control-allow-origin").is_none());
    }
    // No CORS grant for a preflight either.
    let r = app
        .http
        .request(Method::OPTIONS, app.url("/api/me"))
        .header("Origin", EVIL)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // The gateway's own pages and programs without an Origin are served.
    let own = app.own_origin();
    let r = app
        .http
        .get(app.url("/api/me"))
        .header("Origin", own)
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.get("/api/me", Some(&admin.token)).await.0, 200);
}

#[tokio::test]
async fn an_unused_session_expires_after_the_idle_timeout_and_a_used_one_lives_on() {
    let app = TestApp::builder()
        .session_idle_timeout(Duration::from_secs(600))
        .start()
        .await;
    let busy = app.agent("grace").await;
    let idle = app.login("grace").await;
    for _ in 0..3 {
        app.clock.advance(Duration::from_secs(400));
        assert_eq!(app.get("/api/me", Some(&busy.token)).await.0, 200);
    }
    assert_eq!(app.get("/api/me", Some(&idle.token)).await.0, 401);
    let (closed, _) = app.hello_refused("/ws/agent", &idle.token).await;
    assert_eq!(closed, Closed::Code(4001));
    // The absolute lifetime holds however busy the session is.
    let app = TestApp::builder()
        .session_ttl(Duration::from_secs(1800))
        .session_idle_timeout(Duration::from_secs(600))
        .start()
        .await;
    let s = app.agent("grace").await;
    for _ in 0..4 {
        app.clock.advance(Duration::from_secs(500));
        let _ = app.get("/api/me", Some(&s.token)).await;
    }
    assert_eq!(app.get("/api/me", Some(&s.token)).await.0, 401);
}

#[tokio::test]
async fn logging_out_everywhere_ends_every_session_and_closes_their_sockets() {
    let app = TestApp::start().await;
    let laptop = app.agent("grace").await;
    let phone = app.login("grace").await;
    let (mut ws, _) = app.agent_ws(&phone).await;
    let (status, _) = app
        .delete("/api/session?everywhere=true", Some(&laptop.token))
        .await;
    assert_eq!(status, 204);
    assert_eq!(ws.closed().await, Closed::Code(4003));
    assert_eq!(app.get("/api/me", Some(&laptop.token)).await.0, 401);
    assert_eq!(app.get("/api/me", Some(&phone.token)).await.0, 401);
    // A plain logout ends only its own session.
    let a = app.login("grace").await;
    let b = app.login("grace").await;
    assert_eq!(app.delete("/api/session", Some(&a.token)).await.0, 204);
    assert_eq!(app.get("/api/me", Some(&a.token)).await.0, 401);
    assert_eq!(app.get("/api/me", Some(&b.token)).await.0, 200);
}
