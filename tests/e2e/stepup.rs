//! Step-up verification of customers, end to end: a real SMTP server (aiosmtpd, STARTTLS)
//! receives the code email, the test takes the code from it and answers through the widget
//! protocol, and the server decides whether a sensitive action may happen.

use deskgate_tests::smtp::{
    body_of, code_in, free_port, subject_of, Options, SilentListener, SmtpServer, Tls,
};
use deskgate_tests::{Closed, Staff, TestApp, TestAppBuilder, WsClient};
use serde_json::{json, Value};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);

/// A gateway sending through `smtp`, an agent holding the ticket of a customer whose signed
/// identity carries ada@example.com, both connected.
struct Desk {
    app: TestApp,
    agent: Staff,
    agent_ws: WsClient,
    customer: WsClient,
    customer_token: String,
    ticket: i64,
}

async fn desk(builder: TestAppBuilder) -> Desk {
    desk_with(builder, json!({}), json!({})).await
}

/// [`desk`] with more identity claims and `POST /api/visitor` fields for the customer
/// (see [`TestApp::verified_visitor_with`]).
async fn desk_with(builder: TestAppBuilder, claims: Value, body: Value) -> Desk {
    let app = builder.start().await;
    let agent = app.agent("grace").await;
    let (mut agent_ws, _) = app.agent_ws(&agent).await;
    let visitor = app
        .verified_visitor_with("cust-1", "ada@example.com", claims, body)
        .await;
    let (mut customer, _) = app.customer_ws(&visitor).await;
    let ack = customer
        .send_text(None, "m1", "Hello, I moved house last week")
        .await;
    let ticket = ack["ticket"].as_i64().unwrap();
    let ok = agent_ws
        .request(json!({"type": "claim", "ticket": ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    Desk {
        app,
        agent,
        agent_ws,
        customer,
        customer_token: visitor.token,
        ticket,
    }
}

impl Desk {
    /// Asks for verification over the agent's WebSocket; returns the customer's
    /// `verification_requested`.
    async fn request(&mut self, action: &str) -> Value {
        let reply = self
            .agent_ws
            .request(
                json!({"type": "request_verification", "ticket": self.ticket, "action": action}),
            )
            .await;
        assert_eq!(reply["type"], "ok", "{reply}");
        self.customer.recv_type("verification_requested").await
    }

    async fn verify(&mut self, challenge: &Value, code: &str) -> Value {
        self.customer
            .request(json!({"type": "verify", "challenge": challenge, "code": code}))
            .await
    }

    async fn perform(&self, action: &str) -> (u16, Value) {
        self.app
            .post(
                &format!("/api/tickets/{}/actions", self.ticket),
                Some(&self.agent.token),
                json!({"action": action}),
            )
            .await
    }

    async fn status(&self) -> Value {
        let (status, body) = self
            .app
            .get(
                &format!("/api/tickets/{}/verifications", self.ticket),
                Some(&self.agent.token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Another tab of the same customer.
    async fn second_tab(&self) -> WsClient {
        let (ws, _) = self
            .app
            .hello("/ws/customer", &self.customer_token, json!([]))
            .await;
        ws
    }
}

/// Wrong codes counted over every stored challenge: in the database, or in Redis when the
/// gateway keeps its challenges there (`redis-cli`, as an operator would look).
async fn stored_attempts(app: &TestApp) -> i64 {
    let Some(redis) = &app.redis else {
        return app
            .db_i64(
                "SELECT CAST(COALESCE(SUM(attempts), 0) AS BIGINT) FROM verification_challenges",
            )
            .await;
    };
    let port = redis.lock().unwrap().port.to_string();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8(out.stdout).unwrap()
    };
    cli(&["--scan", "--pattern", "deskgate:verify:c:*"])
        .lines()
        .map(|key| {
            cli(&["HGET", key, "attempts"])
                .trim()
                .parse::<i64>()
                .unwrap()
        })
        .sum()
}

/// Starts the gateway's Redis again, empty (no persistence), as a crash of it would leave it.
/// Back on Redis, the gateway closes its sockets with 1012 so every client resumes; the desk's
/// agent and customer come back, and the ticket's verification state can be read again.
async fn restart_redis(d: &mut Desk) {
    d.app.redis.as_ref().unwrap().lock().unwrap().restart();
    assert_eq!(d.agent_ws.closed().await, Closed::Code(1012));
    assert_eq!(d.customer.closed().await, Closed::Code(1012));
    d.agent_ws = d.app.agent_ws(&d.agent).await.0;
    d.customer = d
        .app
        .hello("/ws/customer", &d.customer_token, json!([]))
        .await
        .0;
    let path = format!("/api/tickets/{}/verifications", d.ticket);
    for _ in 0..100 {
        let (status, _) = d.app.get(&path, Some(&d.agent.token)).await;
        if status == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway never found its Redis again");
}

fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

#[tokio::test]
async fn the_emailed_code_verifies_the_customer_through_the_widget() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let asked = d.request("change_address").await;
    assert_eq!(asked["action"], "change_address");
    assert_eq!(asked["attempts_left"], 5);
    assert_eq!(asked["destination"], "a***@example.com");

    let mail = smtp.wait_for(1).await.remove(0);
    assert!(mail.contains("To: ada@example.com"), "{mail}");
    assert!(mail.contains("ACME"), "the email names the company: {mail}");
    assert!(mail.contains("will never ask you for this code"), "{mail}");
    let code = code_in(&mail);

    let result = d.verify(&asked["challenge"], &code).await;
    assert_eq!(result["type"], "verification_result", "{result}");
    assert_eq!(result["state"], "approved");
    assert!(result["verified_until"].is_string());

    let badge = d
        .agent_ws
        .recv_where("approved verification", |f| {
            f["type"] == "verification" && f["state"] == "approved"
        })
        .await;
    assert_eq!(badge["ticket"], d.ticket);
    assert!(badge["verified_until"].is_string());

    // The agent never sees the code: not in a frame, not in the conversation.
    let frames = d.agent_ws.drain(QUIET).await;
    assert!(
        !frames.iter().any(|f| f.to_string().contains(&code)),
        "{frames:?}"
    );
    let (_, messages) = d
        .app
        .get(
            &format!("/api/tickets/{}/messages", d.ticket),
            Some(&d.agent.token),
        )
        .await;
    assert!(!messages.to_string().contains(&code), "{messages}");

    let (status, done) = d.perform("change_address").await;
    assert_eq!(status, 201, "{done}");
    assert_eq!(done["challenge"], asked["challenge"]);

    // Each step is in the audit log with who took it, the action and the challenge; never
    // the code.
    let trail = d.app.audit("object_kind=verification").await;
    let steps: Vec<(&str, &str)> = trail
        .iter()
        .rev()
        .map(|e| (e["action"].as_str().unwrap(), e["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("verification_sent", "agent"),
            ("verification_passed", "customer"),
            ("sensitive_action", "agent"),
        ],
        "{trail:?}"
    );
    for entry in &trail {
        assert_eq!(entry["object_id"], asked["challenge"], "{entry}");
        assert_eq!(entry["detail"], "change_address", "{entry}");
        assert_eq!(entry["outcome"], "allowed", "{entry}");
    }
    assert!(
        !format!("{trail:?}").contains(&code),
        "no code in the audit log"
    );
}

#[tokio::test]
async fn a_sensitive_action_needs_a_live_verification_for_that_action() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let (status, body) = d.perform("change_address").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "verification_required");

    let asked = d.request("change_address").await;
    let code = code_in(&smtp.wait_for(1).await[0]);
    assert_eq!(
        d.verify(&asked["challenge"], &code).await["state"],
        "approved"
    );
    assert_eq!(d.perform("change_address").await.0, 201);
    let (status, body) = d.perform("change_email").await;
    assert_eq!(status, 403, "another action is not covered: {body}");

    // Another agent's claim on the ticket is the only way to it; a stranger gets nothing.
    let other = d.app.agent("linus").await;
    let (status, _) = d
        .app
        .post(
            &format!("/api/tickets/{}/actions", d.ticket),
            Some(&other.token),
            json!({"action": "change_address"}),
        )
        .await;
    assert!(status == 403 || status == 404, "{status}");

    d.app.clock.advance(Duration::from_secs(15 * 60));
    let (status, body) = d.perform("change_address").await;
    assert_eq!(status, 403, "the verification expired: {body}");
    let (status, body) = d.perform("launch_rockets").await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn five_wrong_codes_end_the_challenge() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let asked = d.request("reset_password").await;
    let code = code_in(&smtp.wait_for(1).await[0]);
    for left in (1..=4).rev() {
        let r = d.verify(&asked["challenge"], &wrong(&code)).await;
        assert_eq!(
            (r["state"].as_str(), r["attempts_left"].as_i64()),
            (Some("pending"), Some(left)),
            "{r}"
        );
    }
    let r = d.verify(&asked["challenge"], &wrong(&code)).await;
    assert_eq!(r["state"], "max_attempts", "{r}");
    let r = d.verify(&asked["challenge"], &code).await;
    assert_eq!(r["type"], "error", "the right code is too late: {r}");
    assert_eq!(r["code"], "conflict");
    assert_eq!(d.perform("reset_password").await.0, 403);
    assert_eq!(
        d.status().await["verifications"][0]["state"],
        "max_attempts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_guesses_never_exceed_the_limit() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let asked = d.request("change_email").await;
    let code = code_in(&smtp.wait_for(1).await[0]);
    let mut tabs = Vec::new();
    for _ in 0..4 {
        tabs.push(d.second_tab().await);
    }
    // 4 tabs x 6 guesses, all sent before any answer is read.
    let mut tasks = Vec::new();
    for (i, mut tab) in tabs.into_iter().enumerate() {
        let challenge = asked["challenge"].clone();
        let guess = wrong(&code);
        tasks.push(tokio::spawn(async move {
            for j in 0..6 {
                tab.send(json!({"type": "verify", "ref": format!("{i}-{j}"), "challenge": challenge, "code": guess}))
                    .await;
            }
            let mut replies = Vec::new();
            for _ in 0..6 {
                replies.push(
                    tab.recv_where("reply", |f| f.get("ref").is_some())
                        .await,
                );
            }
            replies
        }));
    }
    let mut pending = 0;
    let mut ended = 0;
    let mut refused = 0;
    for t in tasks {
        for r in t.await.unwrap() {
            match (r["type"].as_str(), r["state"].as_str()) {
                (Some("verification_result"), Some("pending")) => pending += 1,
                (Some("verification_result"), Some("max_attempts")) => ended += 1,
                (Some("error"), _) => refused += 1,
                _ => panic!("unexpected reply {r}"),
            }
        }
    }
    assert_eq!((pending, ended, refused), (4, 1, 19));

    assert_eq!(
        stored_attempts(&d.app).await,
        5,
        "attempts are counted atomically"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_right_codes_approve_exactly_once() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let asked = d.request("change_phone").await;
    let code = code_in(&smtp.wait_for(1).await[0]);
    let mut a = d.second_tab().await;
    let mut b = d.second_tab().await;
    let frame =
        json!({"type": "verify", "ref": "x", "challenge": asked["challenge"], "code": code});
    a.send(frame.clone()).await;
    b.send(frame).await;
    let ra = a.recv_where("reply", |f| f["ref"] == "x").await;
    let rb = b.recv_where("reply", |f| f["ref"] == "x").await;
    let approved = [&ra, &rb]
        .iter()
        .filter(|r| r["type"] == "verification_result" && r["state"] == "approved")
        .count();
    let refused = [&ra, &rb]
        .iter()
        .filter(|r| r["type"] == "error" && r["code"] == "conflict")
        .count();
    assert_eq!((approved, refused), (1, 1), "{ra} {rb}");
}

#[tokio::test]
async fn a_used_code_does_not_work_again() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let first = d.request("change_address").await;
    let code = code_in(&smtp.wait_for(1).await[0]);
    assert_eq!(
        d.verify(&first["challenge"], &code).await["state"],
        "approved"
    );
    let again = d.verify(&first["challenge"], &code).await;
    assert_eq!(again["type"], "error", "{again}");
    // Nor for a new challenge: that one has its own code.
    let second = d.request("change_address").await;
    let fresh = code_in(&smtp.wait_for(2).await[1]);
    if fresh != code {
        let r = d.verify(&second["challenge"], &code).await;
        assert_eq!(r["state"], "pending", "{r}");
        assert_eq!(r["attempts_left"], 4);
    }
    assert_eq!(
        d.verify(&second["challenge"], &fresh).await["state"],
        "approved"
    );
}

#[tokio::test]
async fn a_code_expires_after_ten_minutes() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let asked = d.request("change_address").await;
    let code = code_in(&smtp.wait_for(1).await[0]);
    d.app.clock.advance(Duration::from_secs(10 * 60));
    let r = d.verify(&asked["challenge"], &code).await;
    assert_eq!(r["type"], "error", "{r}");
    assert!(r["message"].as_str().unwrap().contains("expired"), "{r}");
    assert_eq!(d.status().await["verifications"][0]["state"], "expired");
    assert_eq!(d.perform("change_address").await.0, 403);
}

#[tokio::test]
async fn resend_waits_thirty_seconds_and_stops_after_three() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let asked = d.request("change_address").await;
    let first = code_in(&smtp.wait_for(1).await[0]);
    let resend = json!({"type": "resend_verification", "challenge": asked["challenge"]});
    let r = d.agent_ws.request(resend.clone()).await;
    assert_eq!(
        (r["type"].as_str(), r["code"].as_str()),
        (Some("error"), Some("retry_later")),
        "{r}"
    );
    for n in 2..=4 {
        d.app.clock.advance(Duration::from_secs(30));
        let r = d.agent_ws.request(resend.clone()).await;
        assert_eq!(r["type"], "ok", "resend {n}: {r}");
        d.customer.recv_type("verification_requested").await;
        smtp.wait_for(n).await;
    }
    d.app.clock.advance(Duration::from_secs(30));
    let r = d.agent_ws.request(resend).await;
    assert_eq!(
        (r["type"].as_str(), r["code"].as_str()),
        (Some("error"), Some("conflict")),
        "{r}"
    );
    assert_eq!(smtp.mails().len(), 4, "no fifth email");
    let latest = code_in(&smtp.mails()[3]);
    if latest != first {
        let r = d.verify(&asked["challenge"], &first).await;
        assert_eq!(
            r["state"], "pending",
            "a resent code replaces the old one: {r}"
        );
    }
    assert_eq!(
        d.verify(&asked["challenge"], &latest).await["state"],
        "approved"
    );
}

#[tokio::test]
async fn a_new_challenge_cancels_the_previous_one() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let old = d.request("change_address").await;
    let old_code = code_in(&smtp.wait_for(1).await[0]);
    let new = d.request("change_address").await;
    let new_code = code_in(&smtp.wait_for(2).await[1]);
    let canceled = d
        .agent_ws
        .recv_where("canceled", |f| {
            f["type"] == "verification" && f["state"] == "canceled"
        })
        .await;
    assert_eq!(canceled["challenge"], old["challenge"]);
    let r = d.verify(&old["challenge"], &old_code).await;
    assert_eq!(r["type"], "error", "{r}");
    assert!(r["message"].as_str().unwrap().contains("canceled"), "{r}");
    assert_eq!(
        d.verify(&new["challenge"], &new_code).await["state"],
        "approved"
    );
}

#[tokio::test]
async fn the_daily_failure_cap_locks_step_up_and_alerts_supervisors() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(
        TestApp::builder()
            .smtp(&smtp)
            .session_ttl(Duration::from_secs(48 * 3600))
            .config(|c| c.verification.rules.daily_failure_cap = 3),
    )
    .await;
    let sup = d.app.staff("sam", "supervisor", 5).await;
    let (mut sup_ws, _) = d.app.agent_ws(&sup).await;
    let asked = d.request("change_address").await;
    let code = code_in(&smtp.wait_for(1).await[0]);
    for _ in 0..3 {
        d.verify(&asked["challenge"], &wrong(&code)).await;
    }
    let alert = sup_ws.recv_type("security_alert").await;
    assert_eq!(alert["kind"], "verification_locked");
    assert_eq!(alert["ticket"], d.ticket);
    let r = d.verify(&asked["challenge"], &code).await;
    assert_eq!(
        (r["type"].as_str(), r["code"].as_str()),
        (Some("error"), Some("locked")),
        "{r}"
    );
    let r = d
        .agent_ws
        .request(
            json!({"type": "request_verification", "ticket": d.ticket, "action": "change_email"}),
        )
        .await;
    assert_eq!(r["code"], "locked", "{r}");
    // The next day (UTC) step-up works again.
    use deskgate::clock::Clock;
    let ms = d.app.clock.now().millis();
    d.app.clock.advance(Duration::from_millis(
        (86_400_000 - ms % 86_400_000 + 1_000) as u64,
    ));
    d.request("change_email").await;
}

#[tokio::test]
async fn smtp_down_is_a_clear_error_and_a_later_retry_works() {
    let mut smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    smtp.stop();
    let r = d
        .agent_ws
        .request(
            json!({"type": "request_verification", "ticket": d.ticket, "action": "change_address"}),
        )
        .await;
    assert_eq!(
        (r["type"].as_str(), r["code"].as_str()),
        (Some("error"), Some("mail_failed")),
        "{r}"
    );
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{r}"
    );
    assert_eq!(
        d.status().await["verifications"],
        json!([]),
        "nothing half-made"
    );
    d.customer
        .expect_none("verification_requested", QUIET)
        .await;

    smtp.restart(false).await;
    let asked = d.request("change_address").await;
    let code = code_in(&smtp.wait_for(1).await[0]);
    assert_eq!(
        d.verify(&asked["challenge"], &code).await["state"],
        "approved"
    );
}

#[tokio::test]
async fn smtp_refusing_is_a_clear_error_over_rest_and_nothing_is_made() {
    let mut smtp = SmtpServer::refusing().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let path = format!("/api/tickets/{}/verifications", d.ticket);
    let (status, body) = d
        .app
        .post(
            &path,
            Some(&d.agent.token),
            json!({"action": "change_address"}),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "mail_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{body}"
    );
    assert_eq!(d.status().await["verifications"], json!([]));
    d.customer
        .expect_none("verification_requested", QUIET)
        .await;

    smtp.restart(false).await;
    let (status, body) = d
        .app
        .post(
            &path,
            Some(&d.agent.token),
            json!({"action": "change_address"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "pending");
    d.customer.recv_type("verification_requested").await;
}

#[tokio::test]
async fn a_customer_without_a_verified_email_cannot_be_verified() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::builder().smtp(&smtp).start().await;
    let agent = app.agent("grace").await;
    let (mut agent_ws, _) = app.agent_ws(&agent).await;
    // Typed, not signed: never used for codes.
    let visitor = app
        .visitor_with(json!({"site_key": "demo", "name": "Eve", "email": "eve@example.com"}))
        .await;
    let (mut customer, _) = app.customer_ws(&visitor).await;
    let ack = customer.send_text(None, "m1", "hi").await;
    let ticket = ack["ticket"].as_i64().unwrap();
    agent_ws
        .request(json!({"type": "claim", "ticket": ticket}))
        .await;
    let r = agent_ws
        .request(
            json!({"type": "request_verification", "ticket": ticket, "action": "change_address"}),
        )
        .await;
    assert_eq!(r["code"], "cannot_verify", "{r}");
    assert!(r["message"]
        .as_str()
        .unwrap()
        .contains("cannot verify this customer"));
    assert!(smtp.mails().is_empty());
}

#[tokio::test]
async fn a_risky_first_message_flags_the_ticket() {
    let app = TestApp::start().await;
    let agent = app.agent("grace").await;
    let (mut agent_ws, _) = app.agent_ws(&agent).await;
    let opened = app
        .customer_with_ticket("Hi, I need to reset my password, I lost access")
        .await;
    let flag = agent_ws.recv_type("step_up_flag").await;
    assert_eq!(flag["ticket"], opened.ticket);
    let (_, status) = app
        .get(
            &format!("/api/tickets/{}/verifications", opened.ticket),
            Some(&agent.token),
        )
        .await;
    assert_eq!(status["flagged"], "reset my password", "{status}");
    let calm = app.customer_with_ticket("Where is my parcel?").await;
    let (_, status) = app
        .get(
            &format!("/api/tickets/{}/verifications", calm.ticket),
            Some(&agent.token),
        )
        .await;
    assert_eq!(status["flagged"], Value::Null);
}

#[tokio::test]
async fn without_smtp_codes_go_to_the_outbox() {
    let mut d = desk(TestApp::builder()).await;
    let asked = d.request("change_address").await;
    let outbox = d.app.data_dir().join("outbox");
    let files: Vec<_> = std::fs::read_dir(&outbox).unwrap().collect();
    assert_eq!(files.len(), 1);
    // The file is sealed: neither the address nor the code is in it in clear.
    let path = files[0].as_ref().unwrap().path();
    let raw = std::fs::read(&path).unwrap();
    assert!(!raw.windows(15).any(|w| w == b"ada@example.com"));
    let mut mail = Vec::new();
    deskgate::vault::outbox::open_file(&d.app.app.vault, &path, &mut mail).unwrap();
    let mail = String::from_utf8(mail).unwrap();
    assert!(mail.contains("To: ada@example.com"), "{mail}");
    let code = code_in(&mail);
    assert!(!raw.windows(6).any(|w| w == code.as_bytes()));
    assert_eq!(
        d.verify(&asked["challenge"], &code).await["state"],
        "approved"
    );
}

#[tokio::test]
async fn verification_frames_are_refused_on_the_wrong_side_and_codes_are_validated() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let asked = d.request("change_address").await;
    let r = d
        .customer
        .request(
            json!({"type": "request_verification", "ticket": d.ticket, "action": "change_address"}),
        )
        .await;
    assert_eq!(r["code"], "forbidden", "{r}");
    let r = d
        .agent_ws
        .request(json!({"type": "verify", "challenge": asked["challenge"], "code": "123456"}))
        .await;
    assert_eq!(r["code"], "forbidden", "{r}");
    let r = d.verify(&asked["challenge"], "12ab56").await;
    assert_eq!(r["code"], "invalid_frame", "{r}");
    assert!(!r.to_string().contains("12ab56"));
    let r = d
        .verify(&json!(asked["challenge"].as_i64().unwrap() + 100), "123456")
        .await;
    assert_eq!(r["code"], "not_found", "{r}");
    let _ = free_port();
}

// --- SMTP: implicit TLS, AUTH with secrets in files, wrong credentials, a silent server -----

const SMTP_USER: &str = "deskgate-mailer";
const SMTP_PASSWORD: &str = "correct horse smtp";

fn with_auth(tls: Tls) -> Options {
    Options {
        tls,
        auth: Some((SMTP_USER.into(), SMTP_PASSWORD.into())),
        refuse: false,
    }
}

/// Asks for a verification, reads the code from the email that `smtp` received as its `n`th,
/// and answers it through the widget: the whole flow, approved.
async fn verified_through(d: &mut Desk, smtp: &SmtpServer, n: usize) {
    let asked = d.request("change_address").await;
    let mail = smtp.wait_for(n).await.remove(n - 1);
    assert!(mail.contains("To: ada@example.com"), "{mail}");
    let code = code_in(&mail);
    let r = d.verify(&asked["challenge"], &code).await;
    assert_eq!(r["state"], "approved", "{r}");
}

#[tokio::test]
async fn implicit_tls_delivers_the_code_email() {
    let smtp = SmtpServer::with(Options {
        tls: Tls::Implicit,
        ..Options::default()
    })
    .await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    verified_through(&mut d, &smtp, 1).await;
}

#[tokio::test]
async fn smtp_auth_takes_the_password_from_a_file_in_the_config() {
    let smtp = SmtpServer::with(with_auth(Tls::Implicit)).await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("smtp-password");
    std::fs::write(&password, format!("{SMTP_PASSWORD}\n")).unwrap();
    let toml = format!(
        "[verification]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsmtp_tls = \"implicit\"\n\
         smtp_ca_file = {:?}\nsmtp_username = \"{SMTP_USER}\"\nsmtp_password_file = {:?}\n",
        smtp.port, smtp.ca_file, password
    );
    let file = dir.path().join("deskgate.toml");
    std::fs::write(&file, toml).unwrap();
    let loaded = deskgate::config::Config::load(&deskgate::config::ServeArgs {
        config: Some(file),
        ..Default::default()
    })
    .unwrap();
    let mut d = desk(TestApp::builder().smtp(&smtp).config(move |c| {
        c.verification.smtp = loaded.verification.smtp;
    }))
    .await;
    verified_through(&mut d, &smtp, 1).await;
}

/// `DESKGATE_SMTP_USERNAME_FILE` and `DESKGATE_SMTP_PASSWORD_FILE`, read by `deskgate serve`'s
/// own argument parser. (nextest runs each test in a process of its own, so the variables
/// reach no other test.)
#[tokio::test]
async fn smtp_auth_takes_username_and_password_files_from_the_environment() {
    use clap::{Args, FromArgMatches};
    let smtp = SmtpServer::with(with_auth(Tls::Starttls)).await;
    let dir = tempfile::tempdir().unwrap();
    let (user_file, password_file) = (dir.path().join("user"), dir.path().join("password"));
    std::fs::write(&user_file, format!("{SMTP_USER}\n")).unwrap();
    std::fs::write(&password_file, SMTP_PASSWORD).unwrap();
    for (k, v) in [
        ("DESKGATE_SMTP_HOST", "127.0.0.1".to_string()),
        ("DESKGATE_SMTP_PORT", smtp.port.to_string()),
        ("DESKGATE_SMTP_TLS", "starttls".to_string()),
        ("DESKGATE_SMTP_CA_FILE", smtp.ca_file.display().to_string()),
        (
            "DESKGATE_SMTP_USERNAME_FILE",
            user_file.display().to_string(),
        ),
        (
            "DESKGATE_SMTP_PASSWORD_FILE",
            password_file.display().to_string(),
        ),
    ] {
        std::env::set_var(k, v);
    }
    let matches = deskgate::config::ServeArgs::augment_args(clap::Command::new("serve"))
        .try_get_matches_from(["serve"])
        .unwrap();
    let args = deskgate::config::ServeArgs::from_arg_matches(&matches).unwrap();
    let loaded = deskgate::config::Config::load(&args).unwrap();
    let smtp_config = loaded.verification.smtp.clone().unwrap();
    assert_eq!(smtp_config.username.as_deref(), Some(SMTP_USER));
    let mut d = desk(TestApp::builder().smtp(&smtp).config(move |c| {
        c.verification.smtp = Some(smtp_config);
    }))
    .await;
    verified_through(&mut d, &smtp, 1).await;
}

#[tokio::test]
async fn wrong_smtp_credentials_are_a_clear_error_and_nothing_is_made() {
    let smtp = SmtpServer::with(with_auth(Tls::Starttls)).await;
    let mut d = desk(TestApp::builder().smtp(&smtp).config(|c| {
        let s = c.verification.smtp.as_mut().unwrap();
        s.username = Some(SMTP_USER.into());
        s.password = Some("not the password".to_string().into());
    }))
    .await;
    let r = d
        .agent_ws
        .request(
            json!({"type": "request_verification", "ticket": d.ticket, "action": "change_address"}),
        )
        .await;
    assert_eq!(
        (r["type"].as_str(), r["code"].as_str()),
        (Some("error"), Some("mail_failed")),
        "{r}"
    );
    let message = r["message"].as_str().unwrap();
    assert!(
        message.contains("did not accept the gateway's SMTP login"),
        "{r}"
    );
    assert!(!message.contains("not the password"), "{r}");
    assert_eq!(
        d.status().await["verifications"],
        json!([]),
        "nothing half-made"
    );
    d.customer
        .expect_none("verification_requested", QUIET)
        .await;
    assert!(smtp.mails().is_empty());
    let trail = d.app.audit("action=verification_sent").await;
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(trail[0]["outcome"], "failed");
    assert!(
        trail[0]["detail"].as_str().unwrap().contains("SMTP login"),
        "{trail:?}"
    );
}

#[tokio::test]
async fn a_silent_smtp_server_times_out_and_never_stalls_the_agent() {
    let silent = SilentListener::start().await;
    let mut d = desk(TestApp::builder().smtp_port(silent.port, None).config(|c| {
        c.verification.smtp.as_mut().unwrap().timeout = Duration::from_secs(5);
    }))
    .await;
    // The request waits on a server that never answers; the agent's other frames do not.
    let request = json!({"type": "request_verification", "ref": "slow", "ticket": d.ticket, "action": "change_address"});
    d.agent_ws.send(request).await;
    let pong = d.agent_ws.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    let sent = d
        .agent_ws
        .send_text(Some(d.ticket), "while-mailing", "One moment please")
        .await;
    assert_eq!(sent["type"], "ack", "{sent}");
    assert!(
        d.agent_ws.take_pending().iter().all(|f| f["ref"] != "slow"),
        "the request was still in progress"
    );
    // Then, within the configured timeout (the wait here only bounds the test), a clear error.
    let r = d
        .agent_ws
        .recv_where("reply to slow", |f| f["ref"] == "slow")
        .await;
    assert_eq!(
        (r["type"].as_str(), r["code"].as_str()),
        (Some("error"), Some("mail_failed")),
        "{r}"
    );
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("did not answer in time"),
        "{r}"
    );
    assert!(silent.accepted() >= 1, "the gateway did connect");
    assert_eq!(
        d.status().await["verifications"],
        json!([]),
        "nothing half-made"
    );
    d.customer
        .expect_none("verification_requested", QUIET)
        .await;
    // Over REST the same: a 502 once the timeout passes, and the gateway carries on.
    let (status, body) = d
        .app
        .post(
            &format!("/api/tickets/{}/verifications", d.ticket),
            Some(&d.agent.token),
            json!({"action": "change_address"}),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "mail_failed");
    assert_eq!(d.status().await["verifications"], json!([]));
}

// --- the email's language ---------------------------------------------------------------------

#[tokio::test]
async fn a_russian_customer_reads_the_code_email_in_russian() {
    let smtp = SmtpServer::start().await;
    // The widget says the customer reads Russian.
    let mut d = desk_with(
        TestApp::builder().smtp(&smtp),
        json!({}),
        json!({"lang": "ru-RU"}),
    )
    .await;
    let asked = d.request("change_address").await;
    let mail = smtp.wait_for(1).await.remove(0);
    assert_eq!(subject_of(&mail), "ACME: код подтверждения", "{mail}");
    let body = body_of(&mail);
    assert!(
        body.contains("Служба поддержки ACME просит подтвердить"),
        "{mail}"
    );
    assert!(
        body.contains("изменение адреса"),
        "the action in Russian: {mail}"
    );
    assert!(
        body.contains("Сотрудники ACME никогда не спрашивают этот код"),
        "{mail}"
    );
    let code = code_in(&mail);
    assert!(body.contains(&format!("Ваш код: {code}")), "{mail}");
    assert!(
        !subject_of(&mail).contains(&code),
        "no code on a locked screen's preview"
    );
    assert_eq!(
        d.verify(&asked["challenge"], &code).await["state"],
        "approved"
    );
}

/// Two sites: `demo` (the default language) and `cn`, whose customers get Chinese by default.
const CN_SECRET: &str = "cn-site-identity-secret-0123456789";

fn with_cn_site(b: TestAppBuilder) -> TestAppBuilder {
    b.config(|c| {
        c.sites = vec![
            deskgate::config::SiteConfig {
                key: "demo".into(),
                name: None,
                identity_secret: Some(CN_SECRET.to_string().into()),
                identity_secret_file: None,
                allowed_origins: Vec::new(),
                prechat: false,
                language: None,
                twilio_auth_token: None,
                twilio_auth_token_file: None,
            },
            deskgate::config::SiteConfig {
                key: "cn".into(),
                name: None,
                identity_secret: Some(CN_SECRET.to_string().into()),
                identity_secret_file: None,
                allowed_origins: Vec::new(),
                prechat: false,
                language: Some("zh".into()),
                twilio_auth_token: None,
                twilio_auth_token_file: None,
            },
        ];
        c.verification.language = verify::template::Language::Ru;
    })
}

#[tokio::test]
async fn the_signed_locale_wins_then_the_widget_then_the_site_then_the_default() {
    let smtp = SmtpServer::start().await;
    // Signed `locale` fa-IR beats the widget's `lang` en.
    let mut d = desk_with(
        with_cn_site(TestApp::builder().smtp(&smtp)),
        json!({"locale": "fa-IR"}),
        json!({"lang": "en", "secret": CN_SECRET}),
    )
    .await;
    d.request("change_email").await;
    let mail = smtp.wait_for(1).await.remove(0);
    assert_eq!(subject_of(&mail), "ACME: کد تأیید شما", "{mail}");
    assert!(
        body_of(&mail).contains("کارکنان ACME هرگز این کد را از شما نمی‌خواهند"),
        "{mail}"
    );
    assert!(body_of(&mail).contains("تغییر نشانی ایمیل شما"), "{mail}");
    code_in(&mail);

    // A signed locale without a text (pt) leaves the widget's language (en) in charge.
    let app = &d.app;
    let grace = &mut d.agent_ws;
    let en = app
        .verified_visitor_with(
            "cust-2",
            "bea@example.com",
            json!({"locale": "pt-BR"}),
            json!({"lang": "en-GB", "secret": CN_SECRET}),
        )
        .await;
    let zh = app
        .verified_visitor_with(
            "cust-3",
            "chen@example.com",
            json!({}),
            json!({"site_key": "cn", "secret": CN_SECRET}),
        )
        .await;
    let ru = app
        .verified_visitor_with(
            "cust-4",
            "dasha@example.com",
            json!({}),
            json!({"secret": CN_SECRET}),
        )
        .await;
    for (n, (visitor, subject)) in [
        (&en, "ACME: your verification code"),
        // The cn site's language, for a customer whose own is not known.
        (&zh, "ACME：您的验证码"),
        // Neither known: the configured default (ru here).
        (&ru, "ACME: код подтверждения"),
    ]
    .into_iter()
    .enumerate()
    {
        let (mut ws, _) = app.customer_ws(visitor).await;
        let ack = ws.send_text(None, "m1", "Hello").await;
        let ticket = ack["ticket"].as_i64().unwrap();
        assert_eq!(
            grace
                .request(json!({"type": "claim", "ticket": ticket}))
                .await["type"],
            "ok"
        );
        let r = grace
            .request(json!({"type": "request_verification", "ticket": ticket, "action": "change_address"}))
            .await;
        assert_eq!(r["type"], "ok", "{r}");
        let mail = smtp.wait_for(n + 2).await.remove(n + 1);
        assert_eq!(subject_of(&mail), subject, "{mail}");
        code_in(&mail);
    }
}

#[tokio::test]
async fn a_malformed_lang_is_refused_and_creates_no_customer() {
    let app = TestApp::start().await;
    let (status, body) = app
        .post(
            "/api/visitor",
            None,
            json!({"site_key": "demo", "name": "Eve", "lang": "ru RU; drop"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("lang"),
        "{body}"
    );
    // A well-formed language without a text of its own is fine: it is simply not used.
    let (status, body) = app
        .post(
            "/api/visitor",
            None,
            json!({"site_key": "demo", "name": "Eve", "lang": "pt-BR"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["customer"]["id"], 1,
        "the refused request made no customer"
    );
}

// --- risky first messages and the automatic request on claim ----------------------------------

/// A verified customer (with `lang`) opens a ticket with `text`; the agent sees it flagged.
async fn flagged_ticket(
    app: &TestApp,
    agent_ws: &mut WsClient,
    sub: &str,
    lang: &str,
    text: &str,
) -> (WsClient, i64) {
    let visitor = app
        .verified_visitor_with(
            sub,
            &format!("{sub}@example.com"),
            json!({}),
            json!({"lang": lang}),
        )
        .await;
    let (mut customer, _) = app.customer_ws(&visitor).await;
    let ack = customer.send_text(None, "m1", text).await;
    let ticket = ack["ticket"].as_i64().unwrap();
    let flag = agent_ws
        .recv_where("step_up_flag", |f| {
            f["type"] == "step_up_flag" && f["ticket"] == ticket
        })
        .await;
    assert_eq!(flag["ticket"], ticket);
    (customer, ticket)
}

#[tokio::test]
async fn claiming_a_flagged_ticket_asks_for_verification_automatically() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::builder()
        .smtp(&smtp)
        .config(|c| c.verification.auto_request_on_claim = true)
        .start()
        .await;
    let grace = app.agent("grace").await;
    let (mut agent_ws, _) = app.agent_ws(&grace).await;
    let (mut customer, ticket) = flagged_ticket(
        &app,
        &mut agent_ws,
        "olga",
        "ru",
        "Здравствуйте! Хочу сменить адрес доставки.",
    )
    .await;
    let (_, status) = app
        .get(
            &format!("/api/tickets/{ticket}/verifications"),
            Some(&grace.token),
        )
        .await;
    assert_eq!(status["flagged"], "сменить адрес", "{status}");
    assert_eq!(
        status["verifications"],
        json!([]),
        "nothing before the claim"
    );
    assert!(smtp.mails().is_empty());

    let ok = agent_ws
        .request(json!({"type": "claim", "ticket": ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    // The customer is asked at once, for the action the phrase names, in their language.
    let asked = customer.recv_type("verification_requested").await;
    assert_eq!(asked["action"], "change_address");
    let pending = agent_ws
        .recv_where("pending verification", |f| {
            f["type"] == "verification" && f["state"] == "pending"
        })
        .await;
    assert_eq!(pending["challenge"], asked["challenge"]);
    let mail = smtp.wait_for(1).await.remove(0);
    assert!(body_of(&mail).contains("изменение адреса"), "{mail}");
    // Bound to the claiming agent: the audit log says grace started it, automatically.
    let sent = app
        .audit(&format!("actor={}&action=verification_sent", grace.id))
        .await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["detail"], "change_address: automatic on claim");
    let code = code_in(&mail);
    let r = customer
        .request(json!({"type": "verify", "challenge": asked["challenge"], "code": code}))
        .await;
    assert_eq!(r["state"], "approved", "{r}");
    let (status, done) = app
        .post(
            &format!("/api/tickets/{ticket}/actions"),
            Some(&grace.token),
            json!({"action": "change_address"}),
        )
        .await;
    assert_eq!(status, 201, "{done}");
    assert_eq!(done["agent"], grace.id);

    // A calm ticket claimed: nothing is asked.
    let calm = app.verified_visitor("calm", "calm@example.com").await;
    let (mut calm_ws, _) = app.customer_ws(&calm).await;
    let ack = calm_ws.send_text(None, "m1", "Where is my parcel?").await;
    let calm_ticket = ack["ticket"].as_i64().unwrap();
    assert_eq!(
        agent_ws
            .request(json!({"type": "claim", "ticket": calm_ticket}))
            .await["type"],
        "ok"
    );
    calm_ws.expect_none("verification_requested", QUIET).await;
    assert_eq!(smtp.mails().len(), 1);
}

#[tokio::test]
async fn without_the_rule_a_flagged_ticket_is_only_flagged() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::builder().smtp(&smtp).start().await;
    let grace = app.agent("grace").await;
    let (mut agent_ws, _) = app.agent_ws(&grace).await;
    let (mut customer, ticket) =
        flagged_ticket(&app, &mut agent_ws, "olga", "ru", "Хочу сменить адрес").await;
    assert_eq!(
        agent_ws
            .request(json!({"type": "claim", "ticket": ticket}))
            .await["type"],
        "ok"
    );
    customer.expect_none("verification_requested", QUIET).await;
    assert!(smtp.mails().is_empty());
}

#[tokio::test]
async fn an_automatic_request_that_cannot_be_sent_tells_the_agent() {
    let app = TestApp::builder()
        .config(|c| c.verification.auto_request_on_claim = true)
        .start()
        .await;
    let grace = app.agent("grace").await;
    let (mut agent_ws, _) = app.agent_ws(&grace).await;
    // An unsigned visitor: no registered email to send a code to.
    let opened = app
        .customer_with_ticket("I need to reset my password")
        .await;
    agent_ws.recv_type("step_up_flag").await;
    assert_eq!(
        agent_ws
            .request(json!({"type": "claim", "ticket": opened.ticket}))
            .await["type"],
        "ok"
    );
    let e = agent_ws
        .recv_where("error", |f| f["type"] == "error" && f.get("ref").is_none())
        .await;
    assert_eq!(e["code"], "cannot_verify", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("automatic verification for reset_password not started"),
        "{e}"
    );
}

/// `--risk-phrases` (and `DESKGATE_RISK_PHRASES`), through `deskgate serve`'s own parser: a
/// phrase of the operator's, mapped to an action, replaces the defaults.
#[tokio::test]
async fn a_configured_phrase_flags_and_asks_for_its_action() {
    use clap::{Args, FromArgMatches};
    let smtp = SmtpServer::start().await;
    let matches = deskgate::config::ServeArgs::augment_args(clap::Command::new("serve"))
        .try_get_matches_from([
            "serve",
            "--risk-phrases",
            "refund to another card => reset_password; перевести на другую карту",
            "--auto-request-on-claim",
        ])
        .unwrap();
    let args = deskgate::config::ServeArgs::from_arg_matches(&matches).unwrap();
    let loaded = deskgate::config::Config::load(&args).unwrap().verification;
    let app = TestApp::builder()
        .smtp(&smtp)
        .config(move |c| {
            c.verification.risk_phrases = loaded.risk_phrases;
            c.verification.auto_request_on_claim = loaded.auto_request_on_claim;
        })
        .start()
        .await;
    let grace = app.agent("grace").await;
    let (mut agent_ws, _) = app.agent_ws(&grace).await;
    let (mut customer, ticket) = flagged_ticket(
        &app,
        &mut agent_ws,
        "ivan",
        "en",
        "Hi, please REFUND to another  card",
    )
    .await;
    assert_eq!(
        agent_ws
            .request(json!({"type": "claim", "ticket": ticket}))
            .await["type"],
        "ok"
    );
    let asked = customer.recv_type("verification_requested").await;
    assert_eq!(asked["action"], "reset_password");
    // A phrase without an action flags only; the default phrases are gone.
    let (mut other, other_ticket) = flagged_ticket(
        &app,
        &mut agent_ws,
        "pyotr",
        "ru",
        "Можно перевести на другую карту?",
    )
    .await;
    assert_eq!(
        agent_ws
            .request(json!({"type": "claim", "ticket": other_ticket}))
            .await["type"],
        "ok"
    );
    other.expect_none("verification_requested", QUIET).await;
    let calm = app
        .customer_with_ticket("I need to reset my password")
        .await;
    agent_ws.expect_none("step_up_flag", QUIET).await;
    let (_, status) = app
        .get(
            &format!("/api/tickets/{}/verifications", calm.ticket),
            Some(&grace.token),
        )
        .await;
    assert_eq!(status["flagged"], Value::Null, "{status}");
}

#[test]
fn risk_phrases_come_from_a_file_and_bad_ones_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let phrases = dir.path().join("phrases.txt");
    std::fs::write(
        &phrases,
        "# ours\nwire the money => reset_password\n\nсменить пин\n",
    )
    .unwrap();
    let load = |toml: String| {
        let file = dir.path().join("deskgate.toml");
        std::fs::write(&file, toml).unwrap();
        deskgate::config::Config::load(&deskgate::config::ServeArgs {
            config: Some(file),
            ..Default::default()
        })
        .map_err(|e| e.to_string())
    };
    let c = load(format!("[verification]\nrisk_phrases_file = {phrases:?}\n")).unwrap();
    let compiled = c.verification.risk_phrases().unwrap();
    assert_eq!(compiled.len(), 2);
    assert_eq!(
        compiled.action_for("wire the money"),
        Some("reset_password")
    );
    let e = load("[verification]\nrisk_phrases = [\"x => launch_rockets\"]\n".into()).unwrap_err();
    assert!(
        e.contains("risk_phrases") && e.contains("launch_rockets"),
        "{e}"
    );
    let e = load(format!(
        "[verification]\nrisk_phrases = [\"x\"]\nrisk_phrases_file = {phrases:?}\n"
    ))
    .unwrap_err();
    assert!(e.contains("not both"), "{e}");
}

// --- the numbers, at their edges ---------------------------------------------------------------

#[tokio::test]
async fn a_code_works_until_the_last_millisecond_of_its_ten_minutes() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let first = d.request("change_address").await;
    let code = code_in(&smtp.wait_for(1).await[0]);
    d.app
        .clock
        .advance(Duration::from_millis(9 * 60_000 + 59_999));
    assert_eq!(
        d.verify(&first["challenge"], &code).await["state"],
        "approved",
        "at 9:59.999"
    );
    let second = d.request("change_email").await;
    let code = code_in(&smtp.wait_for(2).await[1]);
    d.app.clock.advance(Duration::from_secs(10 * 60));
    let r = d.verify(&second["challenge"], &code).await;
    assert_eq!(r["type"], "error", "at 10:00: {r}");
    assert!(r["message"].as_str().unwrap().contains("expired"), "{r}");
}

#[tokio::test]
async fn a_verification_allows_the_action_for_fifteen_minutes_to_the_millisecond() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let asked = d.request("change_address").await;
    let code = code_in(&smtp.wait_for(1).await[0]);
    assert_eq!(
        d.verify(&asked["challenge"], &code).await["state"],
        "approved"
    );
    d.app
        .clock
        .advance(Duration::from_millis(14 * 60_000 + 59_999));
    let (status, body) = d.perform("change_address").await;
    assert_eq!(status, 201, "at 14:59.999: {body}");
    d.app.clock.advance(Duration::from_millis(1));
    let (status, body) = d.perform("change_address").await;
    assert_eq!(status, 403, "at 15:00: {body}");
    assert_eq!(body["error"]["code"], "verification_required");
}

#[tokio::test]
async fn a_resend_is_refused_at_29_999_seconds_and_allowed_at_30() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let asked = d.request("change_address").await;
    smtp.wait_for(1).await;
    let resend = json!({"type": "resend_verification", "challenge": asked["challenge"]});
    d.app.clock.advance(Duration::from_millis(29_999));
    let r = d.agent_ws.request(resend.clone()).await;
    assert_eq!(r["code"], "retry_later", "{r}");
    assert!(r["message"].as_str().unwrap().contains("1 seconds"), "{r}");
    d.app.clock.advance(Duration::from_millis(1));
    let r = d.agent_ws.request(resend).await;
    assert_eq!(r["type"], "ok", "{r}");
    smtp.wait_for(2).await;
}

/// The code exists in clear only in the email and in the customer's `verify` frame: not in any
/// file under the data dir (the SQLite database, its WAL, keys), and not in a line of the log
/// at any level, whatever happens to it (sent, resent, guessed wrong, used).
#[tokio::test]
async fn codes_are_never_at_rest_or_in_the_logs_in_clear() {
    let logs = deskgate_tests::LogCapture::install();
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let asked = d.request("change_address").await;
    let first = code_in(&smtp.wait_for(1).await[0]);
    d.app.clock.advance(Duration::from_secs(30));
    let r = d
        .agent_ws
        .request(json!({"type": "resend_verification", "challenge": asked["challenge"]}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    let second = code_in(&smtp.wait_for(2).await[1]);
    let guess = wrong(&second);
    assert_eq!(
        d.verify(&asked["challenge"], &guess).await["state"],
        "pending"
    );
    assert_eq!(
        d.verify(&asked["challenge"], &second).await["state"],
        "approved"
    );
    assert_eq!(d.perform("change_address").await.0, 201);

    let files = deskgate_tests::files_under(d.app.data_dir());
    let names: Vec<String> = files
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "deskgate.db"), "{names:?}");
    assert!(names.iter().any(|n| n == "deskgate.db-wal"), "{names:?}");
    let text = logs.text();
    assert!(
        text.contains("security event") && text.contains("verification_passed"),
        "the logs were captured"
    );
    for code in [&first, &second, &guess] {
        for (path, bytes) in &files {
            assert!(
                !deskgate_tests::contains_number(bytes, code),
                "code {code} in clear in {}",
                path.display()
            );
        }
        let leaks: Vec<&str> = text
            .lines()
            .filter(|l| deskgate_tests::contains_number(l.as_bytes(), code))
            .collect();
        assert!(leaks.is_empty(), "code {code} in the logs: {leaks:#?}");
    }
}

// --- who a verification authorises, the daily cap under concurrency, alerts read later ------

#[tokio::test]
async fn a_verification_authorises_only_the_agent_who_asked_for_it() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let linus = d.app.agent("linus").await;
    let (mut linus_ws, _) = d.app.agent_ws(&linus).await;
    let asked = d.request("change_address").await;
    let code = code_in(&smtp.wait_for(1).await[0]);
    assert_eq!(
        d.verify(&asked["challenge"], &code).await["state"],
        "approved"
    );
    let badge = d
        .agent_ws
        .recv_where("approved", |f| {
            f["type"] == "verification" && f["state"] == "approved"
        })
        .await;
    assert_eq!(badge["agent"], d.agent.id, "the badge says whose it is");
    // grace hands the ticket to linus while the verification is live.
    let r = d
        .agent_ws
        .request(json!({"type": "transfer", "ticket": d.ticket, "to": linus.id}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    let path = format!("/api/tickets/{}/actions", d.ticket);
    let (status, body) = d
        .app
        .post(
            &path,
            Some(&linus.token),
            json!({"action": "change_address"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "verification_required");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another agent's request"),
        "{body}"
    );
    let (status, _) = d.perform("change_address").await;
    assert!(
        status == 403 || status == 404,
        "grace no longer holds it: {status}"
    );
    let refused = d
        .app
        .audit(&format!("actor={}&action=sensitive_action", linus.id))
        .await;
    assert_eq!(refused[0]["outcome"], "denied");
    assert!(
        refused[0]["detail"]
            .as_str()
            .unwrap()
            .contains("verified for another agent"),
        "{refused:?}"
    );
    // linus asks for his own verification, and then may act.
    let r = linus_ws
        .request(
            json!({"type": "request_verification", "ticket": d.ticket, "action": "change_address"}),
        )
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    let again = d.customer.recv_type("verification_requested").await;
    let code = code_in(&smtp.wait_for(2).await[1]);
    assert_eq!(
        d.verify(&again["challenge"], &code).await["state"],
        "approved"
    );
    let (status, done) = d
        .app
        .post(
            &path,
            Some(&linus.token),
            json!({"action": "change_address"}),
        )
        .await;
    assert_eq!(status, 201, "{done}");
    assert_eq!(done["agent"], linus.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_codes_across_challenges_never_pass_the_daily_cap() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let sup = d.app.staff("sam", "supervisor", 5).await;
    let (mut sup_ws, _) = d.app.agent_ws(&sup).await;
    // Five challenges of one customer (one per action): 25 attempts in all, the daily cap 10.
    let actions = [
        "change_address",
        "change_email",
        "change_phone",
        "reveal_order_history",
        "reset_password",
    ];
    let mut challenges = Vec::new();
    for (n, action) in actions.iter().enumerate() {
        let asked = d.request(action).await;
        let code = code_in(&smtp.wait_for(n + 1).await[n]);
        challenges.push((asked["challenge"].clone(), wrong(&code)));
    }
    let mut tasks = Vec::new();
    for (i, (challenge, guess)) in challenges.into_iter().enumerate() {
        let mut tab = d.second_tab().await;
        tasks.push(tokio::spawn(async move {
            for j in 0..5 {
                tab.send(json!({"type": "verify", "ref": format!("{i}-{j}"), "challenge": challenge, "code": guess}))
                    .await;
            }
            let mut replies = Vec::new();
            for _ in 0..5 {
                replies.push(tab.recv_where("reply", |f| f.get("ref").is_some()).await);
            }
            replies
        }));
    }
    let (mut checked, mut locked) = (0, 0);
    for t in tasks {
        for r in t.await.unwrap() {
            match (r["type"].as_str(), r["code"].as_str()) {
                (Some("verification_result"), _) => checked += 1,
                (Some("error"), Some("locked")) => locked += 1,
                _ => panic!("unexpected reply {r}"),
            }
        }
    }
    assert_eq!((checked, locked), (10, 15), "exactly the cap is checked");
    let failures = d
        .app
        .db_i64("SELECT failures FROM verification_failures")
        .await;
    assert_eq!(failures, 10);
    assert_eq!(stored_attempts(&d.app).await, 10);
    // One alert, from the check that reached the cap.
    sup_ws.recv_type("security_alert").await;
    sup_ws.expect_none("security_alert", QUIET).await;
}

#[tokio::test]
async fn a_supervisor_who_connects_later_sees_the_alert() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(
        TestApp::builder()
            .smtp(&smtp)
            .config(|c| c.verification.rules.daily_failure_cap = 3),
    )
    .await;
    let online = d.app.staff("sam", "supervisor", 5).await;
    let (mut online_ws, _) = d.app.agent_ws(&online).await;
    let asked = d.request("change_address").await;
    let code = code_in(&smtp.wait_for(1).await[0]);
    for _ in 0..3 {
        d.verify(&asked["challenge"], &wrong(&code)).await;
    }
    let live = online_ws.recv_type("security_alert").await;
    // Nobody else was connected; a supervisor who logs in afterwards asks for what they missed.
    d.app.clock.advance(Duration::from_secs(3600));
    let later = d.app.staff("tess", "supervisor", 5).await;
    let (status, alerts) = d.app.get("/api/alerts", Some(&later.token)).await;
    assert_eq!(status, 200, "{alerts}");
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    for field in ["kind", "ticket", "customer", "at", "message"] {
        assert_eq!(alerts[0][field], live[field], "{field}: the frame's format");
    }
    assert_eq!(alerts[0]["kind"], "verification_locked");
    assert_eq!(alerts[0]["ticket"], d.ticket);
    let admin = d.app.admin().await;
    assert_eq!(d.app.get("/api/alerts", Some(&admin.token)).await.0, 200);
    assert_eq!(d.app.get("/api/alerts", Some(&d.agent.token)).await.0, 403);
    assert_eq!(d.app.get("/api/alerts", None).await.0, 401);
    // Older than `since`: not listed; a bad time is a clear error.
    let (_, none) = d
        .app
        .get("/api/alerts?since=2100-01-01T00:00:00Z", Some(&later.token))
        .await;
    assert_eq!(none, json!([]));
    let (status, body) = d
        .app
        .get("/api/alerts?since=yesterday", Some(&later.token))
        .await;
    assert_eq!(status, 400, "{body}");
    // After the default window of 7 days it is gone from the list.
    d.app.clock.advance(Duration::from_secs(7 * 24 * 3600));
    let later = d.app.login("tess").await;
    let (_, old) = d.app.get("/api/alerts", Some(&later.token)).await;
    assert_eq!(old, json!([]));
}

#[tokio::test]
async fn a_reload_or_another_tab_is_asked_for_the_pending_code_again() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let asked = d.request("change_address").await;
    // A reload (a new socket with the same visitor token) and another tab both learn of it
    // in their welcome, with what the widget shows.
    let (_tab, welcome) = d
        .app
        .hello("/ws/customer", &d.customer_token, json!([]))
        .await;
    let listed = &welcome["verifications"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{welcome}");
    for field in [
        "ticket",
        "challenge",
        "action",
        "expires_at",
        "attempts_left",
        "destination",
    ] {
        assert_eq!(listed[0][field], asked[field], "{field}: {welcome}");
    }
    // A wrong code counts, and the next welcome shows the attempts left.
    let code = code_in(&smtp.wait_for(1).await[0]);
    let r = d.verify(&asked["challenge"], &wrong(&code)).await;
    assert_eq!(r["attempts_left"], 4, "{r}");
    let (_, welcome) = d
        .app
        .hello("/ws/customer", &d.customer_token, json!([]))
        .await;
    assert_eq!(welcome["verifications"][0]["attempts_left"], 4, "{welcome}");
    // Once approved, nothing is pending.
    assert_eq!(
        d.verify(&asked["challenge"], &code).await["state"],
        "approved"
    );
    let (_, welcome) = d
        .app
        .hello("/ws/customer", &d.customer_token, json!([]))
        .await;
    assert_eq!(welcome["verifications"], json!([]), "{welcome}");
    // Another customer's welcome never lists it.
    let other = d.app.visitor().await;
    let (_, welcome) = d.app.customer_ws(&other).await;
    assert_eq!(welcome["verifications"], json!([]), "{welcome}");
}

#[tokio::test]
async fn an_expired_code_is_not_listed_in_welcome() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    d.request("change_address").await;
    d.app.clock.advance(Duration::from_secs(11 * 60));
    let (_, welcome) = d
        .app
        .hello("/ws/customer", &d.customer_token, json!([]))
        .await;
    assert_eq!(welcome["verifications"], json!([]), "{welcome}");
}

#[tokio::test]
async fn the_customer_is_told_when_the_code_email_cannot_be_sent() {
    let mut smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp)).await;
    let mut tab = d.second_tab().await;
    smtp.stop();
    let r = d
        .agent_ws
        .request(
            json!({"type": "request_verification", "ticket": d.ticket, "action": "change_address"}),
        )
        .await;
    assert_eq!(r["code"], "mail_failed", "{r}");
    for ws in [&mut d.customer, &mut tab] {
        let told = ws.recv_type("verification_unavailable").await;
        assert_eq!(told["ticket"], d.ticket, "{told}");
        assert_eq!(told["action"], "change_address");
        assert_eq!(told["reason"], "mail_failed");
        assert!(
            told.get("challenge").is_none(),
            "no challenge was made: {told}"
        );
    }
    d.customer
        .expect_none("verification_requested", QUIET)
        .await;

    // A resend that fails names the challenge whose earlier code still works.
    smtp.restart(false).await;
    let asked = d.request("change_address").await;
    let code = code_in(&smtp.wait_for(1).await[0]);
    smtp.stop();
    d.app.clock.advance(Duration::from_secs(31));
    let r = d
        .agent_ws
        .request(json!({"type": "resend_verification", "challenge": asked["challenge"]}))
        .await;
    assert_eq!(r["code"], "mail_failed", "{r}");
    let told = d.customer.recv_type("verification_unavailable").await;
    assert_eq!(told["challenge"], asked["challenge"], "{told}");
    assert_eq!(
        d.verify(&asked["challenge"], &code).await["state"],
        "approved"
    );
}

/// The flags of many tickets are read in one go (the queue snapshot a console gets after
/// falling behind): the flagged ones with their phrase, the others absent, as one by one.
#[tokio::test]
async fn the_flags_of_many_tickets_are_read_at_once_as_one_by_one() {
    use deskgate::ids::TicketId;
    let app = TestApp::start().await;
    let agent = app.agent("grace").await;
    let (mut agent_ws, _) = app.agent_ws(&agent).await;
    let risky = app
        .customer_with_ticket("Hi, I need to reset my password, I lost access")
        .await;
    agent_ws.recv_type("step_up_flag").await;
    let plain = app.customer_with_ticket("Where is my parcel?").await;
    let also = app
        .customer_with_ticket("Please change my email address to a new one")
        .await;
    agent_ws.recv_type("step_up_flag").await;
    let ids = [
        TicketId(plain.ticket),
        TicketId(also.ticket),
        TicketId(risky.ticket),
        TicketId(999_999),
    ];
    let store = &app.app.store;
    let mut many = store.step_up_flags(&ids).await.unwrap();
    many.sort_by_key(|(t, _)| t.0);
    let mut one_by_one = Vec::new();
    for t in ids {
        if let Some(p) = store.step_up_flag(t).await.unwrap() {
            one_by_one.push((t, p));
        }
    }
    one_by_one.sort_by_key(|(t, _)| t.0);
    assert_eq!(many.len(), 2, "{many:?}");
    assert_eq!(many, one_by_one);
    assert!(store.step_up_flags(&[]).await.unwrap().is_empty());
}

/// With Redis, a challenge and its attempts are decided there, the durable store keeps the
/// wrong codes' daily count and the approval, and the authorised action names the approval.
#[tokio::test]
async fn with_redis_a_challenge_is_decided_there_and_its_approval_kept_in_the_database() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp).redis()).await;
    let asked = d.request("change_address").await;
    let challenge = asked["challenge"].as_i64().unwrap();
    let code = code_in(&smtp.wait_for(1).await[0]);
    let in_db = |sql: String| {
        let app = &d.app;
        async move { app.db_i64(&sql).await }
    };
    assert_eq!(
        in_db("SELECT COUNT(*) FROM verification_challenges".into()).await,
        0,
        "a pending challenge is in Redis only"
    );

    let result = d.verify(&asked["challenge"], &wrong(&code)).await;
    assert_eq!(
        (result["state"].as_str(), result["attempts_left"].as_i64()),
        (Some("pending"), Some(4)),
        "{result}"
    );
    assert_eq!(stored_attempts(&d.app).await, 1);
    assert_eq!(
        d.app
            .db_i64("SELECT failures FROM verification_failures")
            .await,
        1,
        "the daily count is kept in the database too"
    );

    let result = d.verify(&asked["challenge"], &code).await;
    assert_eq!(result["state"], "approved", "{result}");
    let recorded = format!(
        "SELECT COUNT(*) FROM verification_challenges WHERE id = {challenge} \
         AND state = 'approved' AND attempts = 1 AND verified_until IS NOT NULL"
    );
    assert_eq!(d.app.db_i64(&recorded).await, 1, "the approval is recorded");
    let (status, done) = d.perform("change_address").await;
    assert_eq!(status, 201, "{done}");
    assert_eq!(done["challenge"], challenge);
    assert_eq!(
        d.app
            .db_i64("SELECT challenge_id FROM verification_actions")
            .await,
        challenge
    );

    // Redis restarts empty: the approval still holds, from the database.
    restart_redis(&mut d).await;
    let (status, done) = d.perform("change_address").await;
    assert_eq!(status, 201, "{done}");
    let status = d.status().await;
    assert!(status.to_string().contains("approved"), "{status}");
}

/// Redis restarts empty: a pending code is gone (the customer is told so and asked again),
/// but the wrong codes of the day still count, from the database, and a new challenge gets an
/// id never seen before.
#[tokio::test]
async fn with_redis_a_restart_forgets_a_pending_code_but_not_the_daily_cap() {
    let smtp = SmtpServer::start().await;
    let builder = TestApp::builder()
        .smtp(&smtp)
        .redis()
        .config(|c| c.verification.rules.daily_failure_cap = 3);
    let mut d = desk(builder).await;
    let first = d.request("change_address").await;
    let code = code_in(&smtp.wait_for(1).await[0]);
    for _ in 0..2 {
        let r = d.verify(&first["challenge"], &wrong(&code)).await;
        assert_eq!(r["state"], "pending", "{r}");
    }

    restart_redis(&mut d).await;
    let gone = d.verify(&first["challenge"], &code).await;
    assert_eq!(gone["type"], "error", "{gone}");
    assert_eq!(gone["code"], "not_found", "{gone}");

    // A second later, the agent asks again.
    d.app.clock.advance(Duration::from_secs(1));
    let second = d.request("change_address").await;
    assert!(
        second["challenge"].as_i64() > first["challenge"].as_i64(),
        "{first} / {second}"
    );
    let code = code_in(&smtp.wait_for(2).await[1]);
    // Two wrong codes before the restart and one now reach the cap of three...
    let r = d.verify(&second["challenge"], &wrong(&code)).await;
    assert_eq!(r["state"], "pending", "{r}");
    // ...so even the right code is not looked at.
    let locked = d.verify(&second["challenge"], &code).await;
    assert_eq!(locked["type"], "error", "{locked}");
    assert_eq!(locked["code"], "locked", "{locked}");
}

/// Redis unreachable: verification fails closed (no code checked, nothing approved) and
/// works again once Redis is back.
#[tokio::test]
async fn with_redis_down_a_check_is_refused_and_nothing_is_approved() {
    let smtp = SmtpServer::start().await;
    let mut d = desk(TestApp::builder().smtp(&smtp).redis()).await;
    let asked = d.request("change_address").await;
    let code = code_in(&smtp.wait_for(1).await[0]);
    d.app.redis.as_ref().unwrap().lock().unwrap().kill();
    let refused = d.verify(&asked["challenge"], &code).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "unavailable", "{refused}");
    let (status, body) = d.perform("change_address").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        d.app
            .db_i64("SELECT COUNT(*) FROM verification_challenges")
            .await,
        0
    );

    restart_redis(&mut d).await;
    let asked = d.request("change_address").await;
    let code = code_in(&smtp.wait_for(2).await[1]);
    let result = d.verify(&asked["challenge"], &code).await;
    assert_eq!(result["state"], "approved", "{result}");
}

/// Two nodes on one database and one Redis: the customer's two tabs, one on each node, guess
/// at once. The challenge's five attempts hold over both nodes together, exactly one check
/// ends it, and the right code sent to either node afterwards is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_two_nodes_share_a_challenge_and_its_attempts() {
    let smtp = SmtpServer::start().await;
    let builder = TestApp::builder().smtp(&smtp).redis().on_postgres().await;
    let mut d = desk(builder).await;
    let b = TestApp::builder().smtp(&smtp).node_of(&d.app).start().await;
    let asked = d.request("change_address").await;
    let code = code_in(&smtp.wait_for(1).await[0]);

    let mut tasks = Vec::new();
    for (i, node) in [&d.app, &b, &d.app, &b].into_iter().enumerate() {
        let (mut tab, _) = node
            .hello("/ws/customer", &d.customer_token, json!([]))
            .await;
        let (challenge, guess) = (asked["challenge"].clone(), wrong(&code));
        tasks.push(tokio::spawn(async move {
            for j in 0..4 {
                tab.send(json!({"type": "verify", "ref": format!("{i}-{j}"), "challenge": challenge, "code": guess}))
                    .await;
            }
            let mut replies = Vec::new();
            for _ in 0..4 {
                replies.push(tab.recv_where("reply", |f| f.get("ref").is_some()).await);
            }
            (tab, replies)
        }));
    }
    let (mut pending, mut ended, mut refused) = (0, 0, 0);
    let mut tabs = Vec::new();
    for t in tasks {
        let (tab, replies) = t.await.unwrap();
        tabs.push(tab);
        for r in replies {
            match (r["type"].as_str(), r["state"].as_str()) {
                (Some("verification_result"), Some("pending")) => pending += 1,
                (Some("verification_result"), Some("max_attempts")) => ended += 1,
                (Some("error"), _) => refused += 1,
                _ => panic!("unexpected reply {r}"),
            }
        }
    }
    assert_eq!((pending, ended, refused), (4, 1, 11), "over both nodes");
    assert_eq!(stored_attempts(&d.app).await, 5);
    assert_eq!(
        d.app
            .db_i64("SELECT failures FROM verification_failures")
            .await,
        5
    );
    for tab in &mut tabs[..2] {
        let late = tab
            .request(json!({"type": "verify", "challenge": asked["challenge"], "code": code}))
            .await;
        assert_eq!(late["type"], "error", "{late}");
    }
}
