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

/// A code that is not the current one (nor within the accepted skew).
fn wrong_code(app: &TestApp, seed: &Seed) -> String {
    let near: Vec<String> = (-1..=1).map(|s| code(app, seed, s)).collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

async fn db(app: &TestApp) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(app.db_path());
    sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap()
}

async fn stored_failures(app: &TestApp, user: i64) -> i64 {
    sqlx::query_scalar("SELECT failures FROM staff_totp WHERE user_id = ?")
        .bind(user)
        .fetch_one(&mut db(app).await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_parallel_logins_is_checked_only_as_far_as_the_delays_allow() {
    let app = app().await;
    let (sam, seed, _) = enrolled(&app).await;
    let wrong = wrong_code(&app, &seed);
    // Twenty logins with a wrong code at the same instant: the first three cost nothing, so
    // three are checked; every other one finds the 1-second delay reserved and is refused
    // without its code being looked at.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let http = app.http.clone();
        let url = app.url("/api/session");
        let body = json!({"username": "sam", "password": PASSWORD, "otp": wrong});
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (3, 17), "{statuses:?}");
    assert_eq!(stored_failures(&app, sam).await, 3);
    let failed = app.audit(&format!("actor={sam}&action=mfa_failed")).await;
    assert_eq!(
        failed.len(),
        3,
        "only checked codes are failures: {failed:?}"
    );
    // Even the right code waits out the delay, then works.
    assert_eq!(login(&app, "sam", Some(&code(&app, &seed, 0))).await.0, 429);
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(login(&app, "sam", Some(&code(&app, &seed, 0))).await.0, 201);
    assert_eq!(
        stored_failures(&app, sam).await,
        0,
        "a right code clears the count"
    );
}

#[tokio::test]
async fn each_further_wrong_code_doubles_the_wait() {
    let app = app().await;
    let (_, seed, _) = enrolled(&app).await;
    let wrong = wrong_code(&app, &seed);
    for _ in 0..3 {
        assert_eq!(login(&app, "sam", Some(&wrong)).await.0, 401);
    }
    // Fourth failure: 1 s after the third.
    assert_eq!(login(&app, "sam", Some(&wrong)).await.0, 429);
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(login(&app, "sam", Some(&wrong)).await.0, 401);
    // Now 2 s: one second is not enough, not even for the right code.
    app.clock.advance(Duration::from_secs(1));
    let (status, body) = login(&app, "sam", Some(&code(&app, &seed, 0))).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "retry_later");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retry in 1 seconds"),
        "{body}"
    );
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(login(&app, "sam", Some(&wrong)).await.0, 401);
    // Then 4 s: refused at 3.999 s, allowed at 4 s.
    app.clock.advance(Duration::from_millis(3_999));
    assert_eq!(login(&app, "sam", Some(&code(&app, &seed, 0))).await.0, 429);
    app.clock.advance(Duration::from_millis(1));
    assert_eq!(login(&app, "sam", Some(&code(&app, &seed, 0))).await.0, 201);
}

#[tokio::test]
async fn a_hundred_consecutive_failures_lock_the_factor_until_an_admin_resets_it() {
    let app = TestApp::builder()
        .config(|c| c.verification.mfa_roles = vec![Role::Supervisor])
        .session_ttl(Duration::from_secs(72 * 3600))
        .start()
        .await;
    let (sam, seed, recovery) = enrolled(&app).await;
    let (status, body) = login(&app, "sam", Some(&code(&app, &seed, 0))).await;
    assert_eq!(status, 201, "{body}");
    let session = body["token"].as_str().unwrap().to_string();
    let limits = verify::lockout::TotpLimits::default();
    // The same counter guards every check of the factor; renewing recovery codes is one that
    // needs no password, so the hundred failures go through it, each exactly when its delay
    // allows (and not a millisecond earlier).
    for n in 0..100u32 {
        let delay = limits.delay(n);
        if !delay.is_zero() {
            app.clock.advance(delay - Duration::from_millis(1));
            let (status, body) = app
                .post(
                    "/api/me/mfa/recovery-codes",
                    Some(&session),
                    json!({"code": wrong_code(&app, &seed)}),
                )
                .await;
            assert_eq!(status, 429, "failure {n}, 1 ms early: {body}");
            app.clock.advance(Duration::from_millis(1));
        }
        let (status, body) = app
            .post(
                "/api/me/mfa/recovery-codes",
                Some(&session),
                json!({"code": wrong_code(&app, &seed)}),
            )
            .await;
        assert_eq!(status, 401, "failure {}: {body}", n + 1);
    }
    assert_eq!(stored_failures(&app, sam).await, 100);
    // Locked: no wait ends it, and neither the right code nor a recovery code opens it.
    app.clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(login(&app, "sam", Some(&code(&app, &seed, 0))).await.0, 401);
    assert_eq!(login(&app, "sam", Some(&recovery[0])).await.0, 401);
    assert_eq!(
        stored_failures(&app, sam).await,
        100,
        "nothing past the cap is counted"
    );
    let denied = app
        .audit(&format!("actor={sam}&action=mfa_failed&outcome=denied"))
        .await;
    assert!(
        denied
            .iter()
            .any(|e| e["detail"].as_str().is_some_and(|d| d.contains("locked"))),
        "{denied:?}"
    );
    let admin = app.admin().await;
    assert_eq!(
        app.delete(&format!("/api/users/{sam}/mfa"), Some(&admin.token))
            .await
            .0,
        204
    );
    let (status, body) = login(&app, "sam", None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["mfa_enrolment_required"], true);
}

#[tokio::test]
async fn a_recovery_code_clears_the_failure_count_like_a_right_code() {
    let app = app().await;
    let (sam, seed, recovery) = enrolled(&app).await;
    let wrong = wrong_code(&app, &seed);
    for _ in 0..3 {
        assert_eq!(login(&app, "sam", Some(&wrong)).await.0, 401);
    }
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(login(&app, "sam", Some(&recovery[0])).await.0, 201);
    assert_eq!(stored_failures(&app, sam).await, 0);
    // The free failures are free again, and the delay starts from the beginning.
    for _ in 0..3 {
        assert_eq!(login(&app, "sam", Some(&wrong)).await.0, 401);
    }
    assert_eq!(login(&app, "sam", Some(&code(&app, &seed, 0))).await.0, 429);
}

// --- who must have a second factor, and managing it ------------------------------------------

/// Enrols TOTP with the given (enrolment-only or full) session; returns the seed and the
/// recovery codes. The clock then moves on one step.
async fn enrol(app: &TestApp, token: &str) -> (Seed, Vec<String>) {
    let (status, e) = app.post("/api/me/mfa/totp", Some(token), json!({})).await;
    assert_eq!(status, 201, "{e}");
    let seed = seed_from_base32(e["secret"].as_str().unwrap()).unwrap();
    let (status, body) = app
        .post(
            "/api/me/mfa/totp/confirm",
            Some(token),
            json!({"code": code(app, &seed, 0)}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.clock.advance(Duration::from_secs(30));
    let recovery = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    (seed, recovery)
}

/// Under a config that requires a second factor of admins: bootstraps the admin, enrols them
/// with the enrolment-only session, and returns a full session.
async fn enrolled_admin(app: &TestApp) -> String {
    let limited = app.admin().await;
    let (status, _) = app.get("/api/users", Some(&limited.token)).await;
    assert_eq!(status, 401, "an enrolment-only session manages nothing");
    let (seed, _) = enrol(app, &limited.token).await;
    let (status, body) = login(app, "admin", Some(&code(app, &seed, 0))).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_string()
}

async fn create(app: &TestApp, admin: &str, username: &str, role: &str) {
    let (status, body) = app
        .post(
            "/api/users",
            Some(admin),
            json!({"username": username, "name": username, "role": role, "password": PASSWORD, "capacity": 3}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn by_default_supervisors_approvers_and_admins_must_enrol_and_agents_need_not() {
    let defaults = deskgate::config::Config::default().verification;
    for role in [Role::Supervisor, Role::Approver, Role::Admin] {
        assert!(defaults.requires_mfa(role), "{role:?}");
    }
    for role in [Role::Agent, Role::Lead] {
        assert!(!defaults.requires_mfa(role), "{role:?}");
    }
    // The gateway with those defaults.
    let app = TestApp::builder().mfa_required().start().await;
    let admin = enrolled_admin(&app).await;
    for (name, role) in [
        ("ann", "approver"),
        ("sam", "supervisor"),
        ("grace", "agent"),
        ("leo", "lead"),
    ] {
        create(&app, &admin, name, role).await;
    }
    for name in ["ann", "sam"] {
        let (status, body) = login(&app, name, None).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["mfa_enrolment_required"], true, "{name}: {body}");
        let token = body["token"].as_str().unwrap();
        assert_eq!(app.get("/api/me", Some(token)).await.0, 401, "{name}");
        let (_, status) = app.get("/api/me/mfa", Some(token)).await;
        assert_eq!(status["required"], true, "{status}");
    }
    for name in ["grace", "leo"] {
        let (status, body) = login(&app, name, None).await;
        assert_eq!(status, 201, "{body}");
        assert!(
            body.get("mfa_enrolment_required").is_none(),
            "{name}: {body}"
        );
        let token = body["token"].as_str().unwrap();
        assert_eq!(app.get("/api/me", Some(token)).await.0, 200, "{name}");
    }
}

/// `--mfa-for-agents`, through `deskgate serve`'s own parser.
#[tokio::test]
async fn mfa_for_agents_makes_agents_and_leads_enrol_and_keep_it() {
    use clap::{Args, FromArgMatches};
    let matches = deskgate::config::ServeArgs::augment_args(clap::Command::new("serve"))
        .try_get_matches_from(["serve", "--mfa-for-agents"])
        .unwrap();
    let args = deskgate::config::ServeArgs::from_arg_matches(&matches).unwrap();
    let roles = deskgate::config::Config::load(&args)
        .unwrap()
        .verification
        .mfa_roles;
    let app = TestApp::builder()
        .config(move |c| c.verification.mfa_roles = roles)
        .start()
        .await;
    let admin = enrolled_admin(&app).await;
    create(&app, &admin, "grace", "agent").await;
    create(&app, &admin, "leo", "lead").await;
    let (_, body) = login(&app, "leo", None).await;
    assert_eq!(body["mfa_enrolment_required"], true, "{body}");
    let (_, body) = login(&app, "grace", None).await;
    assert_eq!(body["mfa_enrolment_required"], true, "{body}");
    let limited = body["token"].as_str().unwrap().to_string();
    // The enrolment-only session opens no socket.
    let (closed, _) = app.hello_refused("/ws/agent", &limited).await;
    assert_eq!(closed, deskgate_tests::Closed::Code(4001));
    let (seed, _) = enrol(&app, &limited).await;
    assert_eq!(
        login(&app, "grace", None).await.0,
        401,
        "now the code is needed"
    );
    let (status, body) = login(&app, "grace", Some(&code(&app, &seed, 0))).await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap();
    app.hello("/ws/agent", token, json!([])).await;
    // Required for agents now: an agent may not turn it off.
    app.clock.advance(Duration::from_secs(30));
    let (status, body) = app
        .delete_with(
            "/api/me/mfa/totp",
            Some(token),
            json!({"code": code(&app, &seed, 0)}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn new_recovery_codes_replace_the_old_ones() {
    let app = app().await;
    let (_, seed, old) = enrolled(&app).await;
    let (_, body) = login(&app, "sam", Some(&code(&app, &seed, 0))).await;
    let token = body["token"].as_str().unwrap().to_string();
    app.clock.advance(Duration::from_secs(30));
    // A wrong code renews nothing.
    let (status, _) = app
        .post(
            "/api/me/mfa/recovery-codes",
            Some(&token),
            json!({"code": wrong_code(&app, &seed)}),
        )
        .await;
    assert_eq!(status, 401);
    let (status, body) = app
        .post(
            "/api/me/mfa/recovery-codes",
            Some(&token),
            json!({"code": code(&app, &seed, 0)}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let new: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|c| !old.contains(c)));
    let (_, status) = app.get("/api/me/mfa", Some(&token)).await;
    assert_eq!(status["recovery_codes_left"], 10);
    assert_eq!(
        login(&app, "sam", Some(&old[0])).await.0,
        401,
        "the old set is gone"
    );
    assert_eq!(login(&app, "sam", Some(&new[0])).await.0, 201);
}

#[tokio::test]
async fn a_required_factor_cannot_be_turned_off() {
    let app = app().await;
    let (_, seed, _) = enrolled(&app).await;
    let (_, body) = login(&app, "sam", Some(&code(&app, &seed, 0))).await;
    let token = body["token"].as_str().unwrap().to_string();
    app.clock.advance(Duration::from_secs(30));
    let (status, body) = app
        .delete_with(
            "/api/me/mfa/totp",
            Some(&token),
            json!({"code": code(&app, &seed, 0)}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(
        login(&app, "sam", None).await.0,
        401,
        "the factor is still there"
    );
    let (_, status) = app.get("/api/me/mfa", Some(&token)).await;
    assert_eq!(status["totp"], true);
}

#[tokio::test]
async fn an_admin_reset_is_in_the_audit_log() {
    let app = app().await;
    let (sam, _, _) = enrolled(&app).await;
    let admin = app.admin().await;
    assert_eq!(
        app.delete(&format!("/api/users/{sam}/mfa"), Some(&admin.token))
            .await
            .0,
        204
    );
    let entries = app.audit("action=mfa_reset").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(e["actor"], admin.id);
    assert_eq!(e["role"], "admin");
    assert_eq!(e["outcome"], "allowed");
    assert_eq!(
        (e["object_kind"].as_str(), e["object_id"].as_i64()),
        (Some("user"), Some(sam))
    );
}
