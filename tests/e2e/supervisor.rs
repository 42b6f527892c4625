//! What the supervisor console reads from the gateway, through the real server: the audit
//! chain's status (the same verdict as `deskgate audit verify`, tampering named, allowed only
//! to approvers and admins, itself audited), the limits of access requests, the gateway's
//! clock in grant views, and the step-up outcome counters on `/metrics`.

use crate::config::deskgate_binary;
use deskgate::clock::Clock;
use deskgate_tests::smtp::{code_in, SmtpServer};
use deskgate_tests::{Staff, TestApp, WsClient};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

async fn chain(app: &TestApp, who: &Staff) -> Value {
    let (status, body) = app.get("/api/audit/status", Some(&who.token)).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn the_chain_status_agrees_with_the_cli_and_names_a_tampered_entry() {
    let app = TestApp::builder()
        .config(|c| c.audit.checkpoint_every = 4)
        .start()
        .await;
    let admin = app.admin().await;
    for name in ["ana", "ben", "cai"] {
        app.agent(name).await;
    }
    let (_, head) = app.get("/api/audit?limit=1", Some(&admin.token)).await;
    // That query is itself the next entry; the status check reads up to it.
    let entries = head[0]["seq"].as_i64().unwrap() + 1;
    let s = chain(&app, &admin).await;
    assert_eq!(s["status"], "ok", "{s}");
    assert_eq!(s["entries"], entries, "{s}");
    // A checkpoint every 4 entries (the minute sweep may have signed one more).
    let last = s["last_checkpoint"].as_i64().unwrap();
    assert!(last >= entries / 4 * 4 && last <= entries, "{s}");
    assert!(s["checkpoints"].as_i64().unwrap() >= entries / 4, "{s}");
    assert_eq!(s["unsigned"], entries - last, "{s}");
    assert_eq!(s["key_id"], app.app.auditor.key_id().unwrap());
    assert!(s["first_bad_entry"].is_null() && s["problem"].is_null());

    // The check is itself an entry, and the command line sees the same log.
    let trail = app.audit("action=audit_read&limit=5").await;
    let own = trail
        .iter()
        .find(|e| {
            e["detail"]
                .as_str()
                .unwrap_or("")
                .starts_with("chain status: ok")
        })
        .expect("the status check is audited");
    assert_eq!(own["actor"], admin.id);
    let out = Command::new(deskgate_binary())
        .args(["audit", "verify", "--data"])
        .arg(app.data_dir())
        .env_remove("DESKGATE_AUDIT_KEY_FILE")
        .env_remove("DESKGATE_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("audit log ok: "), "{text}");

    // Someone edits an entry in the database behind the gateway's back.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", app.db_path().display()))
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET actor_id = 999 WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    let s = chain(&app, &admin).await;
    assert_eq!(s["status"], "broken", "{s}");
    assert_eq!(s["first_bad_entry"], 3, "{s}");
    assert!(
        s["problem"].as_str().unwrap().starts_with("entry 3:"),
        "{s}"
    );
    let trail = app.audit("action=audit_read&limit=5").await;
    assert!(
        trail
            .iter()
            .any(|e| e["detail"] == "chain status: broken at entry 3"),
        "{trail:?}"
    );
}

#[tokio::test]
async fn only_approvers_and_admins_read_the_chain_status() {
    let app = TestApp::start().await;
    let (status, body) = app.get("/api/audit/status", None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = app.get("/api/audit/status", Some("not-a-token")).await;
    assert_eq!(status, 401);
    for (name, role) in [("ana", "agent"), ("lee", "lead"), ("sam", "supervisor")] {
        let who = app.staff(name, role, 5).await;
        let (status, body) = app.get("/api/audit/status", Some(&who.token)).await;
        assert_eq!(status, 403, "{role}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
        let denied = app
            .audit(&format!(
                "action=audit_read&outcome=denied&actor={}",
                who.id
            ))
            .await;
        assert_eq!(denied.len(), 1, "{role}: the refusal is audited");
        assert_eq!(denied[0]["detail"], "chain status");
    }
    let april = app.staff("april", "approver", 5).await;
    assert_eq!(chain(&app, &april).await["status"], "ok");
    let admin = app.admin().await;
    assert_eq!(chain(&app, &admin).await["status"], "ok");
}

#[tokio::test]
async fn the_request_form_reads_the_limits_the_gateway_enforces() {
    let app = TestApp::builder()
        .config(|c| {
            c.grants.max_duration = Duration::from_secs(2 * 3600);
            c.grants.pending_ttl = Duration::from_secs(12 * 3600);
        })
        .start()
        .await;
    let (status, _) = app.get("/api/grants/policy", None).await;
    assert_eq!(status, 401);
    let sam = app.staff("sam", "supervisor", 5).await;
    let (status, p) = app.get("/api/grants/policy", Some(&sam.token)).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        p,
        json!({"default_duration_minutes": 60, "max_duration_minutes": 120,
               "pending_ttl_minutes": 720, "reason_min": 10, "reason_max": 500})
    );
    // The cap it names is the one a request meets.
    let agent = app.agent("closer").await;
    let (mut ws, _) = app.agent_ws(&agent).await;
    let mut c = app.customer_with_ticket("Where is my parcel").await;
    ws.request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    ws.request(json!({"type": "resolve", "ticket": c.ticket}))
        .await;
    c.ws.recv_type("ticket").await;
    app.clock.advance(Duration::from_secs(73 * 3600));
    app.close_resolved().await;
    let sam = app.login("sam").await;
    let ask = |minutes: u64| {
        json!({"kind": "transcript", "object": c.ticket, "duration_minutes": minutes,
               "reason": "a dispute needs the chat record"})
    };
    let (status, body) = app.post("/api/grants", Some(&sam.token), ask(121)).await;
    assert_eq!(status, 400, "{body}");
    let (status, g) = app.post("/api/grants", Some(&sam.token), ask(120)).await;
    assert_eq!(status, 201, "{g}");

    // Views carry the gateway's clock, so a console counts down against it.
    let now = app.clock.now();
    assert_eq!(g["now"], now.rfc3339(), "{g}");
    let april = app.staff("april", "approver", 5).await;
    let (status, g) = app
        .post(
            &format!("/api/grants/{}/approve", g["id"]),
            Some(&april.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{g}");
    app.clock.advance(Duration::from_secs(60));
    let (status, t) = app
        .get(
            &format!("/api/grants/{}/transcript", g["id"]),
            Some(&sam.token),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["expires_at"], g["expires_at"]);
    assert_eq!(t["now"], app.clock.now().rfc3339());
    let (_, list) = app.get("/api/grants", Some(&sam.token)).await;
    assert_eq!(list[0]["now"], app.clock.now().rfc3339());
}

/// A verified customer's ticket held by an agent, for step-ups one after another.
pub(crate) struct StepUps {
    pub customer: WsClient,
    pub ticket: i64,
    /// Code emails received so far.
    pub mails: usize,
}

impl StepUps {
    /// A new verified customer whose ticket `agent` claims.
    pub async fn new(app: &TestApp, agent: &mut WsClient, sub: &str) -> StepUps {
        let visitor = app.verified_visitor(sub, "ada@example.com").await;
        let (mut customer, _) = app.customer_ws(&visitor).await;
        let ack = customer.send_text(None, "m1", "I moved house").await;
        let ticket = ack["ticket"].as_i64().unwrap();
        let ok = agent
            .request(json!({"type": "claim", "ticket": ticket}))
            .await;
        assert_eq!(ok["type"], "ok", "{ok}");
        StepUps {
            customer,
            ticket,
            mails: 0,
        }
    }

    /// Asks for a verification; returns the challenge and the code from the email.
    pub async fn ask(&mut self, agent: &mut WsClient, smtp: &SmtpServer) -> (Value, String) {
        let r = self.request(agent).await;
        assert_eq!(r["type"], "ok", "{r}");
        let asked = self.customer.recv_type("verification_requested").await;
        self.mails += 1;
        let mail = smtp.wait_for(self.mails).await.remove(self.mails - 1);
        (asked["challenge"].clone(), code_in(&mail))
    }

    /// The agent's `request_verification`, and the gateway's reply.
    pub async fn request(&mut self, agent: &mut WsClient) -> Value {
        agent
            .request(json!({"type": "request_verification",
                "ticket": self.ticket, "action": "change_address"}))
            .await
    }

    pub async fn verify(&mut self, challenge: &Value, code: &str) -> Value {
        self.customer
            .request(json!({"type": "verify", "challenge": challenge, "code": code}))
            .await
    }

    /// Runs one of each outcome: approved 1, failed_code 5, expired 1, mail_failed 1,
    /// max_attempts 1 and, with a daily cap of 6 wrong codes, locked 1. Returns the last
    /// challenge.
    pub async fn every_outcome(
        &mut self,
        app: &TestApp,
        agent: &mut WsClient,
        smtp: &mut SmtpServer,
    ) -> Value {
        // One wrong code, then the right one.
        let (challenge, code) = self.ask(agent, smtp).await;
        self.verify(&challenge, &wrong(&code)).await;
        let r = self.verify(&challenge, &code).await;
        assert_eq!(r["state"], "approved", "{r}");
        // A code typed after its ten minutes.
        let (challenge, code) = self.ask(agent, smtp).await;
        app.clock.advance(Duration::from_secs(11 * 60));
        let r = self.verify(&challenge, &code).await;
        assert_eq!(r["type"], "error", "{r}");
        // The mail server refuses the recipient.
        smtp.restart(true).await;
        let r = self.request(agent).await;
        assert_eq!(r["code"], "mail_failed", "{r}");
        smtp.restart(false).await;
        // Five wrong codes use up the challenge; with the one before, six wrong codes today
        // reach the cap.
        let (challenge, code) = self.ask(agent, smtp).await;
        for _ in 0..5 {
            self.verify(&challenge, &wrong(&code)).await;
        }
        challenge
    }
}

/// A six-digit code that is not `code`.
pub(crate) fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

fn verifications(metrics: &str) -> Vec<(String, u64)> {
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("deskgate_verifications_total{outcome=\"")?;
            let (outcome, v) = rest.split_once("\"} ")?;
            Some((outcome.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn step_up_outcomes_are_counted_on_metrics() {
    let mut smtp = SmtpServer::start().await;
    let app = TestApp::builder()
        .smtp(&smtp)
        .config(|c| c.verification.rules.daily_failure_cap = 6)
        .start()
        .await;
    let names = [
        "approved",
        "failed_code",
        "expired",
        "max_attempts",
        "mail_failed",
        "locked",
    ];
    let zero: Vec<(String, u64)> = names.iter().map(|n| (n.to_string(), 0)).collect();
    assert_eq!(verifications(&app.metrics().await), zero);
    let agent = app.agent("grace").await;
    let (mut agent_ws, _) = app.agent_ws(&agent).await;
    let mut d = StepUps::new(&app, &mut agent_ws, "cust-1").await;
    let last = d.every_outcome(&app, &mut agent_ws, &mut smtp).await;
    let after = verifications(&app.metrics().await);
    let want: Vec<(String, u64)> = names
        .iter()
        .zip([1, 5, 1, 1, 1, 1])
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    assert_eq!(after, want);
    // Once locked, a code is refused without counting as another outcome.
    let r = d.verify(&last, "123456").await;
    assert_eq!(r["code"], "locked", "{r}");
    assert_eq!(verifications(&app.metrics().await), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkpoint_being_signed_is_not_taken_for_a_cut_checkpoint_log() {
    // A checkpoint after every entry, and every status check is itself an entry, so checks
    // and signing overlap all the time. A checkpoint stored in the database and not yet
    // appended to the checkpoint log is one being signed: no check may call the log cut.
    // (With a checkpoint after every entry, the bound on unsigned entries can also flag the
    // entries of writers running beside a check; that is not what this test is about.)
    let app = TestApp::builder()
        .config(|c| c.audit.checkpoint_every = 1)
        .start()
        .await;
    let admin = app.admin().await;
    let checks = |n: usize| {
        let (app, admin) = (&app, &admin);
        async move {
            let mut problems = Vec::new();
            for _ in 0..n {
                let s = chain(app, admin).await;
                problems.push(s["problem"].as_str().unwrap_or_default().to_string());
            }
            problems
        }
    };
    let reads = async {
        for _ in 0..60 {
            let (status, _) = app.get("/api/audit?limit=1", Some(&admin.token)).await;
            assert_eq!(status, 200);
        }
    };
    let (a, b, c, ()) = tokio::join!(checks(30), checks(30), checks(30), reads);
    let cut: Vec<String> = [a, b, c]
        .into_iter()
        .flatten()
        .filter(|p| p.contains("missing from the checkpoint log"))
        .collect();
    assert!(
        cut.is_empty(),
        "{} of 90 checks: {:?}",
        cut.len(),
        cut.first()
    );
}
