//! Several real gateway processes (the `deskgate` binary) on loopback sharing one PostgreSQL
//! database and one `redis-server` that the harness starts on a free port.

use crate::postgres::TestDatabase;
use crate::{WsClient, PASSWORD};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A free port on 127.0.0.1 (bound, then released for the server that takes it).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A `redis-server` of the test's own, without persistence.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis {
            port: free_port(),
            child: None,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// How many `PUBLISH` commands the server has run since it started (`INFO commandstats`).
    pub fn publishes(&self) -> u64 {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "INFO", "commandstats"])
            .output()
            .expect("redis-cli on PATH");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_publish:calls="))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not start on port {}", self.port);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One gateway process.
pub struct Node {
    pub base: String,
    child: Child,
    pub http: reqwest::Client,
}

impl Node {
    /// Starts `deskgate serve` on a free port over `data` (shared by the nodes, as a shared
    /// volume would be: keyring, site secrets), the database and Redis.
    pub fn start(binary: &Path, data: &Path, db: &TestDatabase, redis: &Redis) -> Node {
        Self::start_with(binary, data, db, redis, &[])
    }

    /// As [`Node::start`], with more `DESKGATE_*` settings (`DESKGATE_CONFIG` among them).
    pub fn start_with(
        binary: &Path,
        data: &Path,
        db: &TestDatabase,
        redis: &Redis,
        env: &[(&str, &str)],
    ) -> Node {
        let mut child = Command::new(binary)
            .arg("serve")
            .env("DESKGATE_LISTEN", "127.0.0.1:0")
            .env("DESKGATE_DATA", data)
            .env("DESKGATE_DATABASE_URL", &db.url)
            .env("DESKGATE_REDIS_URL", redis.url())
            .env("DESKGATE_LOG", "warn")
            .env("DESKGATE_DRAIN_DEADLINE", "3s")
            .env_remove("DESKGATE_CONFIG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn deskgate");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut base = None;
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .expect("deskgate serve printed its banner");
            if let Some(rest) = line.strip_prefix("deskgate is listening on ") {
                base = Some(rest.trim().to_string());
            }
            if line.contains("health:") {
                break;
            }
        }
        // Keep reading, so the process never blocks on a full pipe; shown when a test fails.
        std::thread::spawn(move || {
            while let Ok(l) = lines.recv() {
                eprintln!("node: {l}");
            }
        });
        Node {
            base: base.expect("listening line"),
            child,
            http: reqwest::Client::new(),
        }
    }

    /// Kills the process at once (SIGKILL): no drain, nothing flushed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("POST");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// The status `/readyz` answers with.
    pub async fn ready(&self) -> u16 {
        match self.http.get(format!("{}/readyz", self.base)).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("GET");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// What `/readyz` says, status and body.
    pub async fn readiness(&self) -> (u16, String) {
        match self.http.get(format!("{}/readyz", self.base)).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    pub async fn login(&self, username: &str) -> String {
        let (status, body) = self
            .post(
                "/api/session",
                None,
                json!({"username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, 201, "login {username}: {body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// A new visitor of the demo site: their token.
    pub async fn visitor(&self) -> String {
        let (status, body) = self
            .post(
                "/api/visitor",
                None,
                json!({"site_key": "demo", "name": "Ada"}),
            )
            .await;
        assert_eq!(status, 201, "visitor: {body}");
        body["visitor_token"].as_str().expect("token").to_string()
    }

    /// Opens `path` and completes `hello`; returns the client and `welcome`.
    pub async fn hello(&self, path: &str, token: &str, resume: Value) -> (WsClient, Value) {
        let url = format!("{}{path}", self.base.replacen("http", "ws", 1));
        let mut ws = WsClient::connect(&url, Some("deskgate.v1"))
            .await
            .expect("connect");
        ws.send(json!({"type": "hello", "token": token, "resume": resume}))
            .await;
        let welcome = ws.recv_type("welcome").await;
        (ws, welcome)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Creates a staff account as an operator does, with `deskgate user add` on the database.
pub fn add_agent(binary: &Path, data: &Path, db: &TestDatabase, username: &str) {
    add_staff(binary, data, db, username, "agent");
}

/// Creates a staff account of any role, as [`add_agent`] does.
pub fn add_staff(binary: &Path, data: &Path, db: &TestDatabase, username: &str, role: &str) {
    use std::io::Write;
    let mut child = Command::new(binary)
        .args(["user", "add", "--username", username, "--role", role])
        .args(["--capacity", "50", "--password-stdin", "--data"])
        .arg(data)
        .env("DESKGATE_DATABASE_URL", &db.url)
        .env_remove("DESKGATE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("deskgate user add");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(PASSWORD.as_bytes())
        .expect("password");
    assert!(child.wait().expect("wait").success(), "user add {username}");
}

/// The data dir the nodes share, for the keyring and the site secrets.
pub fn shared_data() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    (dir, path)
}
