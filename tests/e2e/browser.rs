//! The web faces in a real browser: the flows under web-widget/test/ drive Debian's Chromium
//! through playwright-core against a real gateway started here. Each flow is one Node process
//! with one browser; it exits 0 only if every step passed, and its output is shown on failure.
//! tests/run.sh installs Chromium and the npm packages on a machine that lacks them.

use deskgate_tests::{TestApp, PASSWORD};
use std::path::{Path, PathBuf};
use std::process::Command;

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
    text
}

fn screenshots() -> String {
    repo()
        .join("target/screenshots")
        .to_string_lossy()
        .into_owned()
}

async fn flow(app: &TestApp, script: &str) -> String {
    let env = vec![
        ("DESKGATE_URL".to_string(), app.url("")),
        ("DESKGATE_PASSWORD".to_string(), PASSWORD.to_string()),
        ("DESKGATE_SCREENSHOTS".to_string(), screenshots()),
    ];
    run("node", &[script], env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_and_agent_chat_through_the_gateway_in_a_browser() {
    let app = TestApp::start().await;
    app.agent("grace").await;
    let out = flow(&app, "test/chat.mjs").await;
    assert!(
        out.contains("each message is on both sides exactly once"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_surface_is_accessible_and_the_widget_reads_right_to_left() {
    let app = TestApp::start().await;
    app.agent("grace").await;
    app.staff("sam", "supervisor", 1).await; // also creates "admin"
    let out = flow(&app, "test/surfaces.mjs").await;
    assert!(out.contains("supervisor console"), "{out}");
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
