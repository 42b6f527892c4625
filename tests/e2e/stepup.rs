//! Step-up verification of customers, end to end: a real SMTP server (aiosmtpd, STARTTLS)
//! receives the code email, the test takes the code from it and answers through the widget
//! protocol, and the server decides whether a sensitive action may happen.

use deskgate_tests::smtp::{code_in, free_port, SmtpServer};
use deskgate_tests::{Staff, TestApp, TestAppBuilder, WsClient};
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
    let app = builder.start().await;
    let agent = app.agent("grace").await;
    let (mut agent_ws, _) = app.agent_ws(&agent).await;
    let visitor = app.verified_visitor("cust-1", "ada@example.com").await;
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

    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(d.app.db_path());
    let mut db = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let attempts: i64 = sqlx::query_scalar("SELECT attempts FROM verification_challenges")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(attempts, 5, "attempts are counted atomically");
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
