//! Staff credentials: login, logout, the one-time bootstrap, roles, and revocation that reaches
//! sockets already open.

use deskgate_tests::{Closed, TestApp, PASSWORD};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let app = TestApp::start().await;
    app.agent("grace").await;
    let (s1, wrong_password) = app
        .post(
            "/api/session",
            None,
            json!({"username": "grace", "password": "not her password"}),
        )
        .await;
    let (s2, unknown_user) = app
        .post(
            "/api/session",
            None,
            json!({"username": "nobody", "password": "not her password"}),
        )
        .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(wrong_password, unknown_user);
    assert_eq!(wrong_password["error"]["code"], "unauthenticated");
}

#[tokio::test]
async fn the_bootstrap_secret_works_once() {
    let app = TestApp::start().await;
    let secret = app.bootstrap_secret().expect("a fresh gateway has one");
    let (status, _) = app
        .post(
            "/api/bootstrap",
            None,
            json!({"secret": "dgb_guessed", "username": "mallory", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 401, "a wrong secret");
    let (status, user) = app
        .post(
            "/api/bootstrap",
            None,
            json!({"secret": secret, "username": "admin", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["role"], "admin");
    let (status, _) = app
        .post(
            "/api/bootstrap",
            None,
            json!({"secret": secret, "username": "admin2", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 401, "used up");
    let admin = app.login("admin").await;
    let (_, me) = app.get("/api/me", Some(&admin.token)).await;
    assert_eq!(me["username"], "admin");
}

#[tokio::test]
async fn only_admins_create_users() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let lead = app.staff("lina", "lead", 5).await;
    for token in [&grace.token, &lead.token] {
        let (status, body) = app
            .post(
                "/api/users",
                Some(token),
                json!({"username": "eve", "role": "admin", "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, 403, "{body}");
    }
    let (status, _) = app
        .post(
            "/api/users",
            None,
            json!({"username": "eve", "role": "admin", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = app
        .patch(
            &format!("/api/users/{}", grace.id),
            Some(&grace.token),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(status, 403, "no promoting oneself");
    assert_eq!(
        app.post(
            "/api/session",
            None,
            json!({"username": "eve", "password": PASSWORD})
        )
        .await
        .0,
        401
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let other = app.login("grace").await;
    let (status, _) = app.delete("/api/session", Some(&grace.token)).await;
    assert_eq!(status, 204);
    assert_eq!(app.get("/api/me", Some(&grace.token)).await.0, 401);
    let (closed, frames) = app.hello_refused("/ws/agent", &grace.token).await;
    assert_eq!(closed, Closed::Code(4001));
    assert!(frames.is_empty());
    // Other sessions of the same user live on.
    assert_eq!(app.get("/api/me", Some(&other.token)).await.0, 200);
}

#[tokio::test]
async fn deactivating_an_agent_closes_their_sockets_at_once_and_ends_their_sessions() {
    let app = TestApp::start().await;
    let admin = app.admin().await;
    let grace = app.agent("grace").await;
    let phone = app.login("grace").await;
    let bob = app.agent("bob").await;
    let (mut desktop, _) = app.agent_ws(&grace).await;
    let (mut mobile, _) = app.agent_ws(&phone).await;
    let (mut bystander, _) = app.agent_ws(&bob).await;

    let (status, user) = app
        .patch(
            &format!("/api/users/{}", grace.id),
            Some(&admin.token),
            json!({"active": false}),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["active"], false);
    // Both devices are closed within a second of the admin's answer (a bound on waiting
    // for the close, not a measurement).
    let answered = std::time::Instant::now();
    for ws in [&mut desktop, &mut mobile] {
        let left = Duration::from_secs(1).saturating_sub(answered.elapsed());
        let closed = tokio::time::timeout(left, ws.closed())
            .await
            .unwrap_or_else(|_| panic!("a socket still open a second after the deactivation"));
        assert_eq!(closed, Closed::Code(4003));
    }

    for token in [&grace.token, &phone.token] {
        let (closed, frames) = app.hello_refused("/ws/agent", token).await;
        assert_eq!(closed, Closed::Code(4001));
        assert!(frames.is_empty());
        assert_eq!(app.get("/api/me", Some(token)).await.0, 401);
    }
    let (status, _) = app
        .post(
            "/api/session",
            None,
            json!({"username": "grace", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 401, "a disabled user cannot log in");
    let pong = bystander.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "other users are untouched");
}

#[tokio::test]
async fn a_role_change_closes_the_socket_and_requires_a_new_login() {
    let app = TestApp::start().await;
    let admin = app.admin().await;
    let grace = app.agent("grace").await;
    let (mut ws, _) = app.agent_ws(&grace).await;

    let (status, _) = app
        .patch(
            &format!("/api/users/{}", grace.id),
            Some(&admin.token),
            json!({"role": "approver"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ws.closed().await, Closed::Code(4003));
    let (closed, _) = app.hello_refused("/ws/agent", &grace.token).await;
    assert_eq!(closed, Closed::Code(4001));
    assert_eq!(app.get("/api/me", Some(&grace.token)).await.0, 401);

    let again = app.login("grace").await;
    let (_, me) = app.get("/api/me", Some(&again.token)).await;
    assert_eq!(me["role"], "approver");
    // An approver does not work tickets.
    let c = app.customer_with_ticket("Hello").await;
    let (mut ws, _) = app.agent_ws(&again).await;
    let err = ws
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    assert_eq!(err["code"], "forbidden");
}

#[tokio::test]
async fn other_account_changes_leave_sockets_open() {
    let app = TestApp::start().await;
    let admin = app.admin().await;
    let grace = app.agent("grace").await;
    let (mut ws, _) = app.agent_ws(&grace).await;
    let (status, user) = app
        .patch(
            &format!("/api/users/{}", grace.id),
            Some(&admin.token),
            json!({"capacity": 3, "name": "Grace H."}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(user["capacity"], 3);
    let pong = ws.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    assert_eq!(app.get("/api/me", Some(&grace.token)).await.0, 200);
}
