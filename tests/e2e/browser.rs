//! The web faces in a real browser: the flows under web-widget/test/ drive Debian's Chromium
//! through playwright-core against a real gateway started here. Each flow is one Node process
//! with one browser; it exits 0 only if every step passed, and its output is shown on failure.
//! tests/run.sh installs Chromium and the npm packages on a machine that lacks them.

use deskgate::config::SiteConfig;
use deskgate::store::Role;
use deskgate_tests::smtp::{free_port, SmtpServer};
use deskgate_tests::{TestApp, PASSWORD};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn web() -> PathBuf {
    repo().join("web-widget")
}

/// Runs `program args…` in web-widget/ with `env`; panics with its output unless it exits 0.
async fn run(program: &str, args: &[&str], env: Vec<(String, String)>) -> String {
    assert!(
        web().join("node_modules/playwright-core").is_dir(),
        "web-widget/node_modules is missing: run tests/run.sh (it runs npm ci)"
    );
    let program = program.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let shown = format!("{program} {}", args.join(" "));
    // The gateway runs on this test's runtime: wait for the child off its threads.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&program)
            .args(&args)
            .current_dir(web())
            .envs(env)
            .output()
    })
    .await
    .expect("join")
    .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{shown} failed:\n{text}");
    println!("{text}");
    text
}

fn screenshots() -> String {
    repo()
        .join("target/screenshots")
        .to_string_lossy()
        .into_owned()
}

async fn flow(app: &TestApp, script: &str) -> String {
    flow_with(app, script, &[]).await
}

/// [`flow`] with more environment for the script.
async fn flow_with(app: &TestApp, script: &str, extra: &[(&str, String)]) -> String {
    let mut env = vec![
        ("DESKGATE_URL".to_string(), app.url("")),
        ("DESKGATE_PASSWORD".to_string(), PASSWORD.to_string()),
        ("DESKGATE_SCREENSHOTS".to_string(), screenshots()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    run("node", &[script], env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_and_agent_chat_through_the_gateway_in_a_browser() {
    let app = TestApp::start().await;
    app.agent("grace").await;
    let out = flow(&app, "test/chat.mjs").await;
    for step in [
        "each message is on both sides exactly once",
        "the wait ticks up while the ticket waits",
        "while the gateway stays away the widget keeps saying Reconnecting…",
        "back online, the message written meanwhile is sent once and nothing is doubled",
    ] {
        assert!(out.contains(step), "{step}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_and_agent_exchange_files_in_a_browser() {
    let app = TestApp::start().await;
    app.agent("grace").await;
    let out = flow(&app, "test/attachments.mjs").await;
    for step in [
        "the agent opens the screenshot and gets the customer's bytes",
        "no token is ever in a URL",
        "the customer opens the agent's file",
        "an HTML file is refused in the widget with a clear message",
    ] {
        assert!(out.contains(step), "{step}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_surface_is_accessible_and_the_widget_reads_right_to_left() {
    let app = TestApp::start().await;
    app.agent("grace").await;
    app.agent("hopper").await;
    app.staff("sam", "supervisor", 1).await; // also creates "admin"
    let out = flow(&app, "test/surfaces.mjs").await;
    for step in [
        "supervisor console",
        "the page's language (zh) wins over the browser's (ru)",
        "the transfer moves the chat to the other agent's console with its conversation",
        "Alt+T focuses the transfer choice of the open chat",
        "Alt+Q moves focus to the queue",
    ] {
        assert!(out.contains(step), "{step}: {out}");
    }
    // The Persian widget told the gateway its language: the customer's code emails are Persian.
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(app.db_path());
    let mut db = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let languages: Vec<String> = sqlx::query_scalar("SELECT language FROM verification_languages")
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert!(languages.iter().any(|l| l == "fa"), "{languages:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_enrol_and_log_in_with_a_second_factor_in_a_browser() {
    // The roles `deskgate serve` requires a second factor of; the test's clock follows the
    // wall clock so the codes the flow computes match the gateway's.
    let app = TestApp::builder()
        .mfa_required()
        .follow_real_time()
        .start()
        .await;
    app.admin().await; // bootstrap; its first login is enrolment-only
    app.staff_in_store("sam", Role::Supervisor).await;
    let out = flow(&app, "test/mfa.mjs").await;
    assert!(
        out.contains("the supervisor enrols and logs in to the supervisor console with a code"),
        "{out}"
    );
    let actions = app.audit_actions().await;
    let count = |a: &str| actions.iter().filter(|x| *x == a).count();
    assert_eq!(
        count("mfa_enrolled"),
        2,
        "both enrolments are audited: {actions:?}"
    );
    assert_eq!(count("mfa_recovery_used"), 1, "{actions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_up_verification_in_the_browser_with_the_code_from_a_real_mailbox() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::builder()
        .smtp(&smtp)
        .reopen_window(Duration::from_secs(1))
        .start()
        .await;
    let grace = app.agent("grace").await;
    // The signed-in customer has an earlier ticket, long closed.
    let earlier = app.verified_visitor("ada-1", "ada@example.com").await;
    let (mut ws, _) = app.customer_ws(&earlier).await;
    let ack = ws
        .send_text(None, "e1", "My invoice from March is wrong")
        .await;
    let (mut agent_ws, _) = app.agent_ws(&grace).await;
    for frame in [
        json!({"type": "claim", "ticket": ack["ticket"]}),
        json!({"type": "resolve", "ticket": ack["ticket"]}),
    ] {
        let r = agent_ws.request(frame).await;
        assert_eq!(r["type"], "ok", "{r}");
    }
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(app.close_resolved().await.len(), 1);
    ws.close().await;
    agent_ws.close().await;
    // A second gateway whose mail server is down.
    let broken = TestApp::builder()
        .smtp_port(free_port(), None)
        .start()
        .await;
    broken.agent("grace").await;
    let extra = [
        (
            "DESKGATE_IDENTITY_TOKEN",
            app.identity_token("ada-1", "Ada Lovelace", "ada@example.com"),
        ),
        (
            "DESKGATE_MAILDIR",
            smtp.maildir().to_string_lossy().into_owned(),
        ),
        ("DESKGATE_BROKEN_URL", broken.url("")),
        (
            "DESKGATE_BROKEN_IDENTITY_TOKEN",
            broken.identity_token("ada-1", "Ada Lovelace", "ada@example.com"),
        ),
    ];
    let out = flow_with(&app, "test/stepup.mjs", &extra).await;
    assert!(
        out.contains("the badge counts down to verified_until"),
        "{out}"
    );
    assert!(
        out.contains("and the customer is told no code is coming"),
        "{out}"
    );
    let passed = app.audit("action=verification_passed").await;
    assert_eq!(passed.len(), 1, "{passed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_details_are_masked_and_revealed_with_a_reason_in_a_browser() {
    let app = TestApp::start().await;
    app.staff("lina", "lead", 5).await;
    app.agent("grace").await;
    // Two signed-in customers, each with a ticket waiting.
    let mut sockets = Vec::new();
    for (sub, email, phone, text) in [
        (
            "ada-1",
            "ada@example.com",
            "+1 415-555-0132",
            "Where is my parcel?",
        ),
        (
            "bob-1",
            "bob@example.com",
            "+1 415-555-0199",
            "Can I change my order?",
        ),
    ] {
        let token =
            app.sign_identity(json!({"sub": sub, "name": sub, "email": email, "phone": phone}));
        let v = app
            .visitor_with(json!({"site_key": "demo", "identity_token": token}))
            .await;
        let (mut ws, _) = app.customer_ws(&v).await;
        ws.send_text(None, "m1", text).await;
        sockets.push(ws);
    }
    let out = flow(&app, "test/customer-data.mjs").await;
    assert!(
        out.contains("the reveal is in the audit log with its field and reason"),
        "{out}"
    );
    assert!(
        out.contains("the export is in the audit log, and the file names its entry"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_on_the_sites_own_domain_with_nobody_online_and_the_reply_by_email() {
    const SHOP: &str = "http://shop.example";
    let smtp = SmtpServer::start().await;
    let app = TestApp::builder()
        .smtp(&smtp)
        .config(|c| {
            c.sites = vec![SiteConfig {
                key: "demo".into(),
                name: Some("ACME".into()),
                identity_secret: Some(secrecy::SecretString::from("a site secret of some length")),
                identity_secret_file: None,
                allowed_origins: vec![SHOP.into()],
                prechat: true,
                language: None,
                twilio_auth_token: None,
                twilio_auth_token_file: None,
            }]
        })
        .start()
        .await;
    app.agent("grace").await;
    let extra = [
        ("DESKGATE_SHOP_ORIGIN", SHOP.to_string()),
        (
            "DESKGATE_MAILDIR",
            smtp.maildir().to_string_lossy().into_owned(),
        ),
    ];
    let out = flow_with(&app, "test/offsite.mjs", &extra).await;
    for step in [
        "the presence answer allows the site's origin",
        "the site's pre-chat setting shows the form, with no attribute on the page",
        "data-prechat=off overrides the site's setting",
        "with nobody online and an email given, the widget says the reply will come by email",
        "the agent sees the pre-chat name and the email, masked",
        "the reply was emailed to the address the customer gave",
    ] {
        assert!(out.contains(step), "{step}: {out}");
    }
}

#[tokio::test]
async fn the_browser_card_screen_agrees_with_the_shared_vectors() {
    let out = run("node", &["test/screen.mjs"], vec![]).await;
    assert!(out.contains("agree with the Rust screen"), "{out}");
}

#[tokio::test]
async fn the_call_jitter_buffer_plays_in_order_caps_its_delay_and_recovers() {
    let out = run("node", &["test/jitter.mjs"], vec![]).await;
    for step in [
        "jitter of 40 ms under a 60 ms target plays without a gap",
        "a burst is capped at 200 ms",
        "what plays is the newest 200 ms, in order",
        "after an underrun it waits for the target again",
    ] {
        assert!(out.contains(&format!("ok: {step}")), "{step}: {out}");
    }
}

#[tokio::test]
async fn the_embedded_dist_matches_the_sources() {
    let out = run("npm", &["run", "--silent", "check"], vec![]).await;
    assert!(out.contains("dist/ matches the sources"), "{out}");
}

/// A flow that asks the test for things only the test can do (move the gateway's clock, run a
/// verification through the SMTP capture): it prints `@@hook {json}` and waits for one JSON
/// line on its stdin. Everything else it prints is kept for the failure message.
struct HookedFlow {
    child: tokio::process::Child,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    stdin: tokio::process::ChildStdin,
    stderr: tokio::task::JoinHandle<String>,
    out: String,
}

/// Longest a whole browser flow may take before the test gives up on it.
const FLOW_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

impl HookedFlow {
    async fn start(app: &TestApp, script: &str, extra: &[(&str, String)]) -> HookedFlow {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt};
        assert!(
            web().join("node_modules/playwright-core").is_dir(),
            "web-widget/node_modules is missing: run tests/run.sh (it runs npm ci)"
        );
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(script)
            .current_dir(web())
            .env("DESKGATE_URL", app.url(""))
            .env("DESKGATE_PASSWORD", PASSWORD)
            .env("DESKGATE_SCREENSHOTS", screenshots())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start node");
        let stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let stdin = child.stdin.take().expect("stdin");
        let mut err = child.stderr.take().expect("stderr");
        let stderr = tokio::spawn(async move {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s).await;
            s
        });
        HookedFlow {
            child,
            stdout,
            stdin,
            stderr,
            out: String::new(),
        }
    }

    /// The next request of the flow; `None` once it has ended.
    async fn hook(&mut self) -> Option<serde_json::Value> {
        loop {
            let line = tokio::time::timeout(FLOW_DEADLINE, self.stdout.next_line())
                .await
                .expect("the browser flow stalled")
                .expect("read the flow's output")?;
            if let Some(req) = line.strip_prefix("@@hook ") {
                return Some(serde_json::from_str(req).expect("a hook is JSON"));
            }
            self.out.push_str(&line);
            self.out.push('\n');
        }
    }

    async fn reply(&mut self, v: serde_json::Value) {
        use tokio::io::AsyncWriteExt;
        let line = format!("{v}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("answer the flow");
        self.stdin.flush().await.expect("flush");
    }

    /// Waits for the flow to end; panics with everything it printed unless it exited 0.
    async fn finish(mut self) -> String {
        if let Some(req) = self.hook().await {
            panic!("unexpected hook {req} after the last one:\n{}", self.out);
        }
        let status = tokio::time::timeout(FLOW_DEADLINE, self.child.wait())
            .await
            .expect("the browser flow did not exit")
            .expect("wait for node");
        let err = self.stderr.await.unwrap_or_default();
        let text = format!("{}{err}", self.out);
        assert!(status.success(), "the browser flow failed:\n{text}");
        // Shown with `--success-output`, to see which steps ran.
        println!("{text}");
        text
    }
}

/// A ticket opened by a customer, answered, resolved and then closed once the reopen window
/// passed on the test's clock; returns the ticket ids.
async fn closed_tickets(app: &TestApp, texts: &[&str]) -> Vec<i64> {
    let closer = app.agent("closer").await;
    let (mut ws, _) = app.agent_ws(&closer).await;
    let mut ids = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let mut c = app.customer_with_ticket(text).await;
        let ok = ws
            .request(serde_json::json!({"type": "claim", "ticket": c.ticket}))
            .await;
        assert_eq!(ok["type"], "ok", "{ok}");
        ws.request(serde_json::json!({"type": "send", "ticket": c.ticket,
            "client_id": format!("a-{i}"), "text": "Thanks, I am looking into it"}))
            .await;
        let ok = ws
            .request(serde_json::json!({"type": "resolve", "ticket": c.ticket}))
            .await;
        assert_eq!(ok["type"], "ok", "{ok}");
        c.ws.recv_type("ticket").await;
        ids.push(c.ticket);
    }
    app.clock.advance(std::time::Duration::from_secs(73 * 3600));
    let mut closed = app.close_resolved().await;
    closed.sort();
    assert_eq!(closed, ids);
    ids
}

/// A supervisor asks for a closed ticket's transcript in the console, an approver approves it
/// with a code from an authenticator enrolled through the API, the supervisor reads the
/// transcript with the time left ticking until the grant expires (the test's clock) and,
/// for a second grant, until the approver revokes it; nobody is offered their own request;
/// the audit tab verifies the chain and searches; axe-core on every section.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_reads_a_closed_transcript_through_a_grant_in_the_console() {
    use deskgate::clock::Clock;
    let app = TestApp::builder()
        .config(|c| c.audit.checkpoint_every = 10)
        .start()
        .await;
    let closed = closed_tickets(
        &app,
        &["My order 4411 never arrived", "The parcel came damaged"],
    )
    .await;
    let open = app.customer_with_ticket("Is anyone there?").await;
    app.staff("sam", "supervisor", 5).await;
    app.staff("april", "approver", 5).await;
    app.staff("sue", "supervisor", 5).await;
    let env = [
        ("DESKGATE_CLOSED", format!("{},{}", closed[0], closed[1])),
        ("DESKGATE_OPEN", open.ticket.to_string()),
    ];
    let mut flow = HookedFlow::start(&app, "test/supervisor.mjs", &env).await;
    while let Some(req) = flow.hook().await {
        let reply = match req["op"].as_str() {
            Some("now") => serde_json::json!({"now_ms": app.clock.now().millis()}),
            Some("advance") => {
                let secs = req["seconds"].as_u64().expect("seconds");
                app.clock.advance(std::time::Duration::from_secs(secs));
                serde_json::json!({"now_ms": app.clock.now().millis()})
            }
            other => serde_json::json!({"error": format!("unknown hook {other:?}")}),
        };
        flow.reply(reply).await;
    }
    let out = flow.finish().await;
    assert!(
        out.contains("the revoked grant's transcript is closed"),
        "{out}"
    );
}

/// The dashboard's verification-outcome and blocked-card charts move while a supervisor
/// watches: the test runs step-ups through the real SMTP capture (right, wrong, late and
/// unsendable codes, attempts used up, the daily cap) and sends a card number over a raw
/// socket; the supervisor also gets the lock-out as a live security alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_charts_verification_outcomes_blocked_cards_and_alerts() {
    use deskgate_tests::smtp::SmtpServer;
    let mut smtp = SmtpServer::start().await;
    let app = TestApp::builder()
        .smtp(&smtp)
        .config(|c| c.verification.rules.daily_failure_cap = 6)
        .start()
        .await;
    let agent = app.agent("grace").await;
    app.staff("sam", "supervisor", 1).await;
    let (mut agent_ws, _) = app.agent_ws(&agent).await;
    let mut flow = HookedFlow::start(&app, "test/dashboard.mjs", &[]).await;
    while let Some(req) = flow.hook().await {
        match req["op"].as_str() {
            Some("step_up") => {
                let mut d = crate::supervisor::StepUps::new(&app, &mut agent_ws, "cust-9").await;
                d.every_outcome(&app, &mut agent_ws, &mut smtp).await;
                flow.reply(serde_json::json!({"ticket": d.ticket})).await;
            }
            Some("card") => {
                // A modified client sends the number anyway: the server withholds it.
                let mut c = app.customer_with_ticket("Hello").await;
                c.ws.send(serde_json::json!({"type": "send", "client_id": "card-1",
                    "text": "my card is 4111 1111 1111 1111"}))
                    .await;
                let r =
                    c.ws.recv_where("blocked", |f| f["client_id"] == "card-1")
                        .await;
                assert_eq!(r["type"], "blocked", "{r}");
                flow.reply(serde_json::json!({})).await;
            }
            other => {
                flow.reply(serde_json::json!({"error": format!("unknown hook {other:?}")}))
                    .await
            }
        }
    }
    let out = flow.finish().await;
    assert!(
        out.contains("the verification chart shows every outcome"),
        "{out}"
    );
    let metrics = app.metrics().await;
    for (outcome, n) in [
        ("approved", 1),
        ("failed_code", 5),
        ("expired", 1),
        ("max_attempts", 1),
        ("mail_failed", 1),
        ("locked", 1),
    ] {
        let line = format!("deskgate_verifications_total{{outcome=\"{outcome}\"}} {n}");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}

/// A call placed from the widget in one Chromium and joined from the agent console in another,
/// each with a fake microphone playing its own tone (test/call.mjs). Then the recording, played
/// through an approved grant: 16 kHz stereo, the customer's 440 Hz on the left, the agent's
/// 1000 Hz on the right, and both silent through the agent's pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_from_the_widget_to_the_console_is_heard_both_ways_and_recorded() {
    use crate::voice::{goertzel, played_through_grant, rms};
    let app = TestApp::start().await;
    app.agent("grace").await;
    let out = flow(&app, "test/call.mjs").await;
    for step in [
        "the widget places the call and says it is on",
        "the agent's chat shows the call, at 16 kHz",
        "the customer's microphone goes out and the agent is heard",
        "the agent hears the caller",
        "the bar says the recording is paused, and why",
        "after the customer hangs up, both sides say the call has ended",
    ] {
        assert!(out.contains(step), "{step}: {out}");
    }
    let recording: i64 = out
        .lines()
        .find_map(|l| l.strip_prefix("recording="))
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("no recording id: {out}"));
    let (rec, left, right) = played_through_grant(&app, recording).await;
    assert_eq!(rec["rate"], 16000, "{rec}");
    let pauses = rec["pauses"].as_array().unwrap();
    assert_eq!(pauses.len(), 1, "{rec}");
    let (a, b) = (
        pauses[0]["start_ms"].as_u64().unwrap() as usize * 16,
        pauses[0]["end_ms"].as_u64().unwrap() as usize * 16,
    );
    assert!(b - a >= 16 * 1000, "{rec}");
    assert!(left[a..b].iter().chain(&right[a..b]).all(|&x| x == 0.0));
    // Every 100 ms where a side is heard carries that side's tone.
    let (mut l_windows, mut r_windows) = (0, 0);
    for w in 0..left.len() / 1600 {
        let (l, r) = (&left[w * 1600..][..1600], &right[w * 1600..][..1600]);
        if rms(l) > 300.0 {
            l_windows += 1;
            assert!(
                goertzel(l, 16000.0, 440.0) > 10.0 * goertzel(l, 16000.0, 1000.0),
                "left {w}"
            );
        }
        if rms(r) > 300.0 {
            r_windows += 1;
            assert!(
                goertzel(r, 16000.0, 1000.0) > 10.0 * goertzel(r, 16000.0, 440.0),
                "right {w}"
            );
        }
    }
    assert!(
        l_windows >= 20 && r_windows >= 20,
        "{l_windows} {r_windows}"
    );
}

/// The supervisor console's recording player (test/player.mjs): a 2 s call from the browser,
/// paused in the middle through the API, asked for with the request form, approved, and played
/// with its waveform. Every play is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_recording_is_asked_for_approved_and_played_with_its_waveform() {
    let app = TestApp::start().await;
    app.staff("sam", "supervisor", 5).await;
    app.staff("april", "approver", 5).await;
    let (ticket, recording) = crate::voice::browser_call(&app, 100, Some((30, 60))).await;
    let (_, rec) = app
        .get(
            &format!("/api/recordings/{recording}"),
            Some(&app.admin().await.token),
        )
        .await;
    let pause = &rec["pauses"][0];
    let env = [
        ("DESKGATE_CALL_TICKET", ticket.to_string()),
        (
            "DESKGATE_PAUSE_MS",
            format!("{},{}", pause["start_ms"], pause["end_ms"]),
        ),
    ];
    let out = flow_with(&app, "test/player.mjs", &env).await;
    for step in [
        "the request form asks for the ticket's call recording",
        "the player opens the recording through the grant",
        "the customer's lane shows the call's sound",
        "the pause is shaded and silent",
        "playing moves the playhead",
    ] {
        assert!(out.contains(step), "{step}: {out}");
    }
    let played = app.audit("action=grant_used&outcome=allowed").await;
    assert!(
        played.iter().any(|e| e["object_kind"] == "recording"),
        "{played:?}"
    );
}
