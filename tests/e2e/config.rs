//! Configuration and the `deskgate` command itself: file, flags and environment, `--help`, and
//! a real `deskgate serve` that comes up with a bootstrap secret and stops cleanly on SIGTERM.

use clap::Args;
use deskgate::config::{Config, ServeArgs};
use deskgate_tests::{Closed, WsClient, PASSWORD};
use serde_json::json;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

fn load(toml: &str) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deskgate.toml");
    std::fs::write(&path, toml).unwrap();
    let args = ServeArgs {
        config: Some(path),
        ..Default::default()
    };
    Config::load(&args).map_err(|e| e.to_string())
}

#[test]
fn an_unknown_key_in_the_config_file_is_a_clear_error() {
    let err = load("listen = \"127.0.0.1:9000\"\nlisten_port = 9000\n").unwrap_err();
    assert!(err.contains("listen_port"), "{err}");
    assert!(err.contains("deskgate.toml"), "names the file: {err}");

    let err = load("[[sites]]\nkey = \"shop\"\ncolour = \"red\"\n").unwrap_err();
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn a_config_file_sets_what_it_names_and_keeps_the_rest() {
    let c = load(
        "listen = \"127.0.0.1:9000\"\nreopen_window = \"2h\"\nauto_assign = true\n\
         max_frame_bytes = 4096\n[[sites]]\nkey = \"shop\"\n",
    )
    .unwrap();
    assert_eq!(c.listen.port(), 9000);
    assert_eq!(c.desk.reopen_window, Duration::from_secs(7200));
    assert!(c.desk.auto_assign);
    assert_eq!(c.ws.max_frame_bytes, 4096);
    assert_eq!(c.sites[0].key, "shop");
    assert_eq!(c.ws.outbound_queue, Config::default().ws.outbound_queue);
    assert!(
        load("max_frame_bytes = 10\n").is_err(),
        "a value out of range"
    );
    assert!(load("listen = \"not an address\"\n").is_err());
}

/// Every `serve` flag, as `--long` and its `DESKGATE_*` variable.
fn serve_flags() -> Vec<(String, String)> {
    let cmd = ServeArgs::augment_args(clap::Command::new("serve"));
    cmd.get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?.to_string();
            let env = a.get_env().map(|e| e.to_string_lossy().into_owned());
            Some((long, env.unwrap_or_default()))
        })
        .collect()
}

#[test]
fn every_serve_flag_reads_its_deskgate_variable() {
    let flags = serve_flags();
    assert!(flags.len() >= 17, "{flags:?}");
    for (long, env) in &flags {
        let want = format!("DESKGATE_{}", long.to_uppercase().replace('-', "_"));
        assert_eq!(env, &want, "--{long}");
    }
}

/// The `deskgate` binary of this build, built first if needed (it belongs to another package).
pub(crate) fn deskgate_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // This test runs from <target>/<profile>/deps/.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap();
        let profile = profile_dir.file_name().unwrap().to_string_lossy();
        let profile = if profile == "debug" {
            "dev".to_string()
        } else {
            profile.into_owned()
        };
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        // Variables cargo sets for this test would look like a changed environment to build
        // scripts and rebuild their crates.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_MANIFEST_")
                || [
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                ]
                .contains(&key.as_ref())
            {
                build.env_remove(key.as_ref());
            }
        }
        let out = build
            .current_dir(workspace)
            .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
            // The whole workspace's features, as `cargo nextest run --workspace` builds the
            // library with: `-p deskgate` alone would build it again with fewer.
            .args(["build", "--quiet", "--workspace", "--bin", "deskgate"])
            .args(["--profile", &profile])
            .output()
            .expect("run cargo");
        assert!(
            out.status.success(),
            "cargo build -p deskgate failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        profile_dir.join("deskgate")
    })
}

#[test]
fn serve_help_documents_every_flag_and_its_variable() {
    let out = Command::new(deskgate_binary())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for (long, env) in serve_flags() {
        assert!(
            help.contains(&format!("--{long}")),
            "--{long} missing:\n{help}"
        );
        assert!(help.contains(&env), "{env} missing:\n{help}");
    }
}

#[test]
fn serve_refuses_a_config_file_with_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deskgate.toml");
    std::fs::write(&path, "listen_port = 9000\n").unwrap();
    let out = Command::new(deskgate_binary())
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .arg("--data")
        .arg(dir.path().join("data"))
        .env_remove("DESKGATE_LISTEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listen_port"), "{stderr}");
}

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_comes_up_with_a_bootstrap_secret_and_drains_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let child = Command::new(deskgate_binary())
        .arg("serve")
        .env("DESKGATE_LISTEN", "127.0.0.1:0")
        .env("DESKGATE_DATA", data.path())
        .env("DESKGATE_LOG", "warn")
        .env("DESKGATE_DRAIN_DEADLINE", "3s")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Running(child);
    let stdout = server.0.stdout.take().unwrap();
    let mut stderr = server.0.stderr.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let logs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    // The banner: where it listens, then the one-time secret.
    let mut base = None;
    let mut secret = None;
    while secret.is_none() {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("deskgate serve printed its banner");
        if let Some(rest) = line.strip_prefix("deskgate is listening on ") {
            base = Some(rest.trim().to_string());
        }
        if let Some(i) = line.find("\"secret\":\"") {
            let rest = &line[i + "\"secret\":\"".len()..];
            secret = Some(rest[..rest.find('"').unwrap()].to_string());
        }
    }
    let base = base.expect("listening line");
    assert!(
        data.path().join("deskgate.db").exists(),
        "the data dir comes from DESKGATE_DATA"
    );

    let http = reqwest::Client::new();
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let created = http
        .post(format!("{base}/api/bootstrap"))
        .json(&json!({"secret": secret, "username": "admin", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);

    // A customer in a conversation when the node is told to stop.
    let visitor: serde_json::Value = http
        .post(format!("{base}/api/visitor"))
        .json(&json!({"site_key": "demo", "name": "Ada"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ws_url = format!("{}/ws/customer", base.replacen("http", "ws", 1));
    let mut ws = WsClient::connect(&ws_url, Some("deskgate.v1"))
        .await
        .unwrap();
    ws.send(json!({"type": "hello", "token": visitor["visitor_token"], "resume": []}))
        .await;
    ws.recv_type("welcome").await;
    ws.send(json!({"type": "send", "client_id": "c1", "text": "hello"}))
        .await;
    let ack = ws.recv_type("ack").await;

    let pid = server.0.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let mut status = None;
    // Generous: this is about stopping at all, not about speed.
    for _ in 0..400 {
        if let Some(s) = server.0.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = status.expect("deskgate stopped after SIGTERM");
    // Drained: told to reconnect elsewhere with 1012, after its message was acknowledged.
    assert_eq!(ws.closed().await, Closed::Code(1012));
    assert!(ack["seq"].as_i64().unwrap() >= 1, "{ack}");
    let logs = logs.join().unwrap();
    assert!(status.success(), "exit {status:?}; log:\n{logs}");
}

#[test]
fn a_sites_pre_chat_form_is_a_setting_of_its_own() {
    let c = load("[[sites]]\nkey = \"shop\"\nprechat = true\n[[sites]]\nkey = \"blog\"\n").unwrap();
    assert!(c.sites[0].prechat);
    assert!(!c.sites[1].prechat, "off unless switched on");
    let err = load("[[sites]]\nkey = \"shop\"\nprechat = \"yes\"\n").unwrap_err();
    assert!(err.contains("prechat"), "a clear error: {err}");
}
