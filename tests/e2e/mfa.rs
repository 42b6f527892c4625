//! The staff second factor, end to end: TOTP enrolment through the API, login that requires
//! the code for the roles the config names, replay and skew, growing delays, recovery codes
//! and an admin's reset.

use deskgate::clock::Clock;
use deskgate::store::Role;
use deskgate_tests::{TestApp, PASSWORD};
use serde_json::{json, Value};
use std::time::Duration;
use verify::totp::{code_at, seed_from_base32, Seed};

/// A gateway that requires a second factor of supervisors (admins log in with a password, so
/// the test can manage users).
async fn app() -> TestApp {
    TestApp::builder()
        .config(|c| c.verification.mfa_roles = vec![Role::Supervisor])
        .start()
        .await
}

async fn login(app: &TestApp, username: &str, otp: Option<&str>) -> (u16, Value) {
    let mut body = json!({"username": username, "password": PASSWORD});
    if let Some(o) = otp {
        body["otp"] = json!(o);
    }
    app.post("/api/session", None, body).await
}

fn code(app: &TestApp, seed: &Seed, steps: i64) -> String {
    let secs = app.clock.now().millis() / 1000 + steps * 30;
    code_at(seed, secs as u64)
}

/// Creates supervisor `sam`, enrols TOTP with the enrolment-only login, confirms it; returns
/// the seed and the recovery codes. The clock then moves on one step.
async fn enrolled(app: &TestApp) -> (i64, Seed, Vec<String>) {
    let token = app.staff("sam", "supervisor", 5).await;
    let (status, body) = login(app, "sam", None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["mfa_enrolment_required"], true);
    let limited = body["token"].as_str().unwrap().to_string();
    // An enrolment-only session opens nothing else.
    assert_eq!(app.get("/api/me", Some(&limited)).await.0, 401);
    assert_eq!(app.get("/api/me", Some(&token.token)).await.0, 401);
    let (status, e) = app
        .post("/api/me/mfa/totp", Some(&limited), json!({}))
        .await;
    assert_eq!(status, 201, "{e}");
    assert!(e["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    assert!(e["qr_svg"].as_str().unwrap().contains("<svg"));
    let seed = seed_from_base32(e["secret"].as_str().unwrap()).unwrap();
    let (status, body) = app
        .post(
            "/api/me/mfa/totp/confirm",
            Some(&limited),
            json!({"code": code(app, &seed, 0)}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let recovery: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(recovery.len(), 10);
    app.clock.advance(Duration::from_secs(30));
    (token.id, seed, recovery)
}

#[tokio::test]
async fn a_supervisor_logs_in_with_password_and_totp() {
    let app = app().await;
    let (_, seed, _) = enrolled(&app).await;
    let (status, body) = login(&app, "sam", None).await;
    assert_eq!(status, 401, "the code is required");
    assert_eq!(body["error"]["code"], "mfa_required", "{body}");
    let right: u32 = code(&app, &seed, 0).parse().unwrap();
    let wrong = format!("{:06}", (right + 1) % 1_000_000);
    let (status, body) = login(&app, "sam", Some(&wrong)).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error"]["code"], "unauthenticated",
        "a wrong code looks like a wrong password: {body}"
    );
    let (status, body) = login(&app, "sam", Some(&code(&app, &seed, 0))).await;
    assert_eq!(status, 201, "{body}");
    assert!(body.get("mfa_enrolment_required").is_none());
    let token = body["token"].as_str().unwrap();
    let (status, me) = app.get("/api/me", Some(token)).await;
    assert_eq!((status, me["username"].as_str()), (200, Some("sam")));
    let (_, welcome) = app.hello("/ws/agent", token, json!([])).await;
    assert_eq!(welcome["user"]["role"], "supervisor");

    // The seed is sealed at rest.
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(app.db_path());
    let mut db = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT sealed_seed FROM staff_totp")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert!(!sealed
        .windows(seed.expose().len())
        .any(|w| w == seed.expose()));
}

#[tokio::test]
async fn wrong_and_replayed_codes_are_refused() {
    let app = app().await;
    let (_, seed, _) = enrolled(&app).await;
    let right = code(&app, &seed, 0);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    let (status, body) = login(&app, "sam", Some(&wrong)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(login(&app, "sam", Some(&right)).await.0, 201);
    assert_eq!(
        login(&app, "sam", Some(&right)).await.0,
        401,
        "the same code twice is a replay"
    );
    // An earlier step's code is a replay too, even within the skew.
    app.clock.advance(Duration::from_secs(30));
    assert_eq!(
        login(&app, "sam", Some(&code(&app, &seed, -1))).await.0,
        401
    );
}

#[tokio::test]
async fn one_step_of_skew_each_way_is_accepted() {
    let app = app().await;
    let (_, seed, _) = enrolled(&app).await;
    app.clock.advance(Duration::from_secs(90));
    assert_eq!(
        login(&app, "sam", Some(&code(&app, &seed, -2))).await.0,
        401,
        "two steps behind"
    );
    assert_eq!(
        login(&app, "sam", Some(&code(&app, &seed, -1))).await.0,
        201
    );
    assert_eq!(login(&app, "sam", Some(&code(&app, &seed, 1))).await.0, 201);
    assert_eq!(
        login(&app, "sam", Some(&code(&app, &seed, 3))).await.0,
        401,
        "three steps ahead"
    );
}

#[tokio::test]
async fn wrong_codes_make_the_next_attempt_wait() {
    let app = app().await;
    let (_, seed, _) = enrolled(&app).await;
    for _ in 0..3 {
        assert_eq!(login(&app, "sam", Some("000000")).await.0, 401);
    }
    let (status, body) = login(&app, "sam", Some(&code(&app, &seed, 0))).await;
    assert_eq!(status, 429, "even the right code waits: {body}");
    assert_eq!(body["error"]["code"], "retry_later");
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(login(&app, "sam", Some(&code(&app, &seed, 0))).await.0, 201);
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let app = app().await;
    let (_, _, recovery) = enrolled(&app).await;
    let (status, body) = login(&app, "sam", Some(&recovery[0])).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(login(&app, "sam", Some(&recovery[0])).await.0, 401);
    assert_eq!(
        login(&app, "sam", Some(&recovery[1].to_uppercase()))
            .await
            .0,
        201
    );
    let token = body["token"].as_str().unwrap();
    let (_, status) = app.get("/api/me/mfa", Some(token)).await;
    assert_eq!(status["recovery_codes_left"], 8);
    assert_eq!(status["required"], true);
}

#[tokio::test]
async fn an_admin_resets_a_lost_factor() {
    let app = app().await;
    let (sam, seed, _) = enrolled(&app).await;
    let (_, body) = login(&app, "sam", Some(&code(&app, &seed, 0))).await;
    let sam_token = body["token"].as_str().unwrap().to_string();
    let agent = app.agent("grace").await;
    let path = format!("/api/users/{sam}/mfa");
    assert_eq!(app.delete(&path, Some(&agent.token)).await.0, 403);
    let admin = app.admin().await;
    assert_eq!(app.delete(&path, Some(&admin.token)).await.0, 204);
    assert_eq!(
        app.get("/api/me", Some(&sam_token)).await.0,
        401,
        "the reset ends the user's sessions"
    );
    let (status, body) = login(&app, "sam", None).await;
    assert_eq!(status, 201);
    assert_eq!(body["mfa_enrolment_required"], true, "enrol again");
}

#[tokio::test]
async fn an_agent_may_add_a_factor_and_then_needs_it() {
    let app = app().await;
    let agent = app.agent("grace").await;
    let (status, e) = app
        .post("/api/me/mfa/totp", Some(&agent.token), json!({}))
        .await;
    assert_eq!(status, 201);
    let seed = seed_from_base32(e["secret"].as_str().unwrap()).unwrap();
    let (status, _) = app
        .post(
            "/api/me/mfa/totp/confirm",
            Some(&agent.token),
            json!({"code": "000000"}),
        )
        .await;
    assert_eq!(status, 401, "a wrong first code does not confirm");
    let (status, _) = app
        .post(
            "/api/me/mfa/totp/confirm",
            Some(&agent.token),
            json!({"code": code(&app, &seed, 0)}),
        )
        .await;
    assert_eq!(status, 200);
    app.clock.advance(Duration::from_secs(30));
    assert_eq!(login(&app, "grace", None).await.0, 401);
    assert_eq!(
        login(&app, "grace", Some(&code(&app, &seed, 0))).await.0,
        201
    );
    // Agents are not required to keep it: they may turn it off with a current code.
    app.clock.advance(Duration::from_secs(30));
    let (status, _) = app
        .delete_with(
            "/api/me/mfa/totp",
            Some(&agent.token),
            json!({"code": code(&app, &seed, 0)}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(login(&app, "grace", None).await.0, 201);
}
