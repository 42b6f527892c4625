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
async fn the_embedded_dist_matches_the_sources() {
    let out = run("npm", &["run", "--silent", "check"], vec![]).await;
    assert!(out.contains("dist/ matches the sources"), "{out}");
}
