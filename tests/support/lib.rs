//! Test harness for the end-to-end suite: [`TestApp`] starts the real gateway on
//! 127.0.0.1:0 over a temporary SQLite data dir (or, with `DESKGATE_TEST_DATABASE=postgres`, a
//! PostgreSQL database of its own: [`postgres`]; with `DESKGATE_TEST_REDIS=1`, a
//! `redis-server` of its own as well, which takes the verification state, presence and rate
//! limits), and [`WsClient`] is a real WebSocket client that checks every frame it receives
//! against docs/protocol.schema.json.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cluster;
pub mod postgres;
pub mod smtp;
pub mod tls;

use anyhow::{anyhow, bail, Context};
use deskgate::clock::{Clock, ManualClock};
use deskgate::config::Config;
use deskgate::App;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a frame it expects before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// Configures a [`TestApp`]; every knob a test needs, defaults as `deskgate serve` has them.
pub struct TestAppBuilder {
    config: Config,
    data: Option<Arc<tempfile::TempDir>>,
    database: Option<Arc<postgres::TestDatabase>>,
    clock: Option<Arc<ManualClock>>,
    real_time: bool,
    redis: Option<Arc<std::sync::Mutex<cluster::Redis>>>,
    with_redis: bool,
    tls: Option<ServedTls>,
}

/// What a gateway serving TLS for a test was given: its certificate's directory, and a client
/// configuration trusting the authority that signed it.
#[derive(Clone)]
struct ServedTls {
    _dir: Arc<tempfile::TempDir>,
    client: Arc<tokio_rustls::rustls::ClientConfig>,
}

/// Whether this run's gateways use a Redis of their own (`DESKGATE_TEST_REDIS=1`).
pub fn redis_selected() -> bool {
    matches!(std::env::var("DESKGATE_TEST_REDIS").as_deref(), Ok("1"))
}

impl TestAppBuilder {
    /// A `redis-server` of this gateway's own (as `DESKGATE_TEST_REDIS=1` gives every one).
    pub fn redis(mut self) -> Self {
        self.with_redis = true;
        self
    }
    /// A PostgreSQL database of this gateway's own, whatever `DESKGATE_TEST_DATABASE` says
    /// (what several nodes need to share one).
    pub async fn on_postgres(mut self) -> Self {
        self.database = Some(Arc::new(postgres::TestDatabase::create().await));
        self
    }
    /// Another node of `other`'s cluster, in this process: the same data dir (keyring and
    /// verification key, as nodes share them through secrets), database, Redis and clock.
    pub fn node_of(mut self, other: &TestApp) -> Self {
        self.data = Some(other.data.clone());
        self.database = other.database.clone();
        self.redis = other.redis.clone();
        self.clock = Some(other.clock.clone());
        self
    }
    pub fn auto_assign(mut self) -> Self {
        self.config.desk.auto_assign = true;
        self
    }
    pub fn rate(mut self, per_sec: u32, burst: u32) -> Self {
        self.config.ws.rate_per_sec = per_sec;
        self.config.ws.rate_burst = burst;
        self
    }
    pub fn max_frame_bytes(mut self, n: usize) -> Self {
        self.config.ws.max_frame_bytes = n;
        self
    }
    pub fn outbound_queue(mut self, n: usize) -> Self {
        self.config.ws.outbound_queue = n;
        self
    }
    pub fn hello_timeout(mut self, d: Duration) -> Self {
        self.config.ws.hello_timeout = d;
        self
    }
    pub fn reopen_window(mut self, d: Duration) -> Self {
        self.config.desk.reopen_window = d;
        self
    }
    pub fn store_busy_timeout(mut self, d: Duration) -> Self {
        self.config.store_busy_timeout = d;
        self
    }
    pub fn session_ttl(mut self, d: Duration) -> Self {
        self.config.session_ttl = d;
        self
    }
    pub fn visitor_ttl(mut self, d: Duration) -> Self {
        self.config.visitor_ttl = d;
        self
    }
    /// Sends code emails through this SMTP server, with its kind of TLS, trusting its
    /// certificate (its AUTH credentials, if it wants any, are the test's to configure).
    pub fn smtp(self, server: &smtp::SmtpServer) -> Self {
        let tls = match server.options.tls {
            smtp::Tls::Starttls => verify::mail::TlsMode::Starttls,
            smtp::Tls::Implicit => verify::mail::TlsMode::Implicit,
        };
        self.smtp_port(server.port, Some(server.ca_file.clone()))
            .config(|c| {
                if let Some(s) = c.verification.smtp.as_mut() {
                    s.tls = tls;
                }
            })
    }
    /// Sends code emails to 127.0.0.1:`port` over STARTTLS (nothing need listen there).
    pub fn smtp_port(mut self, port: u16, ca_file: Option<PathBuf>) -> Self {
        self.config.verification.smtp = Some(deskgate::stepup::config::SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: verify::mail::TlsMode::Starttls,
            username: None,
            password: None,
            ca_file,
            timeout: deskgate::stepup::config::DEFAULT_SMTP_TIMEOUT,
        });
        self.config.verification.company = "ACME".into();
        self.config.verification.from = "ACME Support <support@acme.test>".into();
        self
    }
    /// Requires a second factor for the roles `deskgate serve` requires it for by default
    /// (its default config's). Off by default in tests, so that tests about other things can
    /// log staff in with a password alone.
    pub fn mfa_required(mut self) -> Self {
        self.config.verification.mfa_roles = Config::default().verification.mfa_roles;
        self
    }
    /// Keeps the test clock in step with the wall clock, for flows that compute time-based
    /// codes outside the gateway (a browser test's authenticator). The clock only moves forward.
    pub fn follow_real_time(mut self) -> Self {
        self.real_time = true;
        self
    }
    pub fn session_idle_timeout(mut self, d: Duration) -> Self {
        self.config.session_idle_timeout = Some(d);
        self
    }
    /// Switches the abuse limits on, with these changes to the defaults.
    pub fn limits(mut self, f: impl FnOnce(&mut deskgate::limits::LimitsConfig)) -> Self {
        self.config.limits.enabled = true;
        f(&mut self.config.limits);
        self
    }
    /// Serves TLS with this certificate and key (PEM files).
    pub fn tls(mut self, cert: PathBuf, key: PathBuf, watch_every: Duration) -> Self {
        self.config.tls = Some(deskgate::tls::TlsConfig {
            cert,
            key,
            watch_every,
        });
        self
    }
    /// Serves TLS with a certificate for localhost and 127.0.0.1 signed by `ca`, which it also
    /// trusts for the other nodes' certificates (`node_ca`); the test's own clients (HTTP and
    /// WebSocket) trust `ca` alone.
    pub fn serve_tls(mut self, ca: &tls::TestCa) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = ca.server_cert(dir.path(), "node", "deskgate node");
        let root = dir.path().join("nodes-ca.pem");
        std::fs::write(&root, ca.root_pem()).expect("write the CA");
        self = self.tls(cert.cert_file, cert.key_file, Duration::from_secs(3600));
        self.config.node_ca = Some(root);
        self.tls = Some(ServedTls {
            _dir: Arc::new(dir),
            client: ca.client_config(&[b"http/1.1"]),
        });
        self
    }
    /// Any other change to the config.
    pub fn config(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    pub async fn start(self) -> TestApp {
        init_tracing();
        let data = self
            .data
            .unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("temp dir")));
        let clock = self.clock.unwrap_or_else(ManualClock::new);
        let mut config = self.config;
        config.data = data.path().to_path_buf();
        let database = match self.database {
            Some(db) => Some(db),
            None if postgres::selected() => Some(Arc::new(postgres::TestDatabase::create().await)),
            None => None,
        };
        if let Some(db) = &database {
            config.database = deskgate::config::Database::parse(&db.url).expect("database url");
            postgres::register(data.path(), &db.url);
        }
        let redis = match self.redis {
            Some(r) => Some(r),
            None if self.with_redis || redis_selected() => {
                Some(Arc::new(std::sync::Mutex::new(cluster::Redis::start())))
            }
            None => None,
        };
        if let Some(r) = &redis {
            let url = r.lock().unwrap_or_else(|p| p.into_inner()).url();
            config.redis_url = Some(secrecy::SecretString::from(url));
        }
        config.listen = "127.0.0.1:0".parse().expect("addr");
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let app = App::build(config.clone(), dyn_clock)
            .await
            .expect("gateway builds");
        let bootstrap = deskgate::bootstrap::prepare(app.store.as_ref())
            .await
            .expect("bootstrap");
        let server = tokio::spawn(deskgate::run(listener, app.clone()));
        if self.real_time {
            let (clock, stop) = (clock.clone(), app.shutdown.clone());
            tokio::spawn(async move {
                loop {
                    let behind = deskgate::clock::SystemClock.now().0 - clock.now().0;
                    if behind > 0 {
                        clock.advance(Duration::from_millis(behind as u64));
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            });
        }
        TestApp {
            addr,
            app,
            config,
            data,
            database,
            redis,
            clock,
            server: Some(server),
            bootstrap,
            http: match &self.tls {
                Some(t) => reqwest::Client::builder()
                    .use_preconfigured_tls((*t.client).clone())
                    .build()
                    .expect("HTTPS client"),
                None => reqwest::Client::new(),
            },
            tls: self.tls,
        }
    }
}

/// A running gateway for one test.
pub struct TestApp {
    pub addr: SocketAddr,
    pub app: App,
    pub config: Config,
    pub data: Arc<tempfile::TempDir>,
    /// The PostgreSQL database, when the run uses one; dropped with the last holder.
    pub database: Option<Arc<postgres::TestDatabase>>,
    /// The gateway's own `redis-server`, when it has one (a test may kill or restart it).
    pub redis: Option<Arc<std::sync::Mutex<cluster::Redis>>>,
    pub clock: Arc<ManualClock>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    bootstrap: Option<secrecy::SecretString>,
    /// An HTTP client for this gateway: over TLS when it serves TLS, trusting its authority.
    pub http: reqwest::Client,
    tls: Option<ServedTls>,
}

/// A logged-in staff member.
#[derive(Clone, Debug)]
pub struct Staff {
    pub id: i64,
    pub username: String,
    pub token: String,
}

/// A customer with a visitor token.
#[derive(Clone, Debug)]
pub struct Visitor {
    pub customer_id: i64,
    pub token: String,
}

pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        let mut config = Config::default();
        config.verification.mfa_roles = Vec::new();
        // Tests of other things log in and make visitors from one address faster than any
        // person would; the tests of the limits switch them on (`TestAppBuilder::limits`).
        config.limits.enabled = false;
        // The anomaly rules would alert supervisors in tests about other things; the alert
        // tests set the thresholds they test.
        config.alerts.pii_customers = 0;
        config.alerts.failed_verifications = 0;
        config.alerts.risky_requests = 0;
        config.alerts.blocked_cards = 0;
        // Tests move the clock by hours between two uses of one login.
        config.session_idle_timeout = None;
        TestAppBuilder {
            config,
            data: None,
            database: None,
            clock: None,
            real_time: false,
            redis: None,
            with_redis: false,
            tls: None,
        }
    }

    pub async fn start() -> TestApp {
        Self::builder().start().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.own_origin())
    }

    /// The WebSocket URL of `path`: `wss://` when the gateway serves TLS.
    pub fn ws_url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// What a WebSocket client connects to this gateway with: over TLS, a client trusting
    /// its authority; else nothing (plain `ws://`).
    pub fn ws_connector(&self) -> Option<tokio_tungstenite::Connector> {
        self.tls
            .as_ref()
            .map(|t| tokio_tungstenite::Connector::Rustls(t.client.clone()))
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    pub fn db_path(&self) -> PathBuf {
        self.data.path().join("deskgate.db")
    }

    /// One integer the gateway's database answers `sql` with, whichever engine it runs on
    /// (`sql` must be valid in both).
    pub async fn db_i64(&self, sql: &str) -> i64 {
        use sqlx::Connection;
        match &self.database {
            Some(db) => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
                sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect(sql)
            }
            None => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(self.db_path());
                let mut conn = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .expect("open");
                sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect(sql)
            }
        }
    }

    /// The one-time bootstrap secret issued at start (none once a user exists).
    pub fn bootstrap_secret(&self) -> Option<String> {
        use secrecy::ExposeSecret;
        self.bootstrap
            .as_ref()
            .map(|s| s.expose_secret().to_string())
    }

    /// Shuts the gateway down cleanly and starts it again on the same data dir and clock,
    /// on a new port.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        TestAppBuilder {
            config: self.config.clone(),
            data: Some(self.data.clone()),
            database: self.database.clone(),
            clock: Some(self.clock.clone()),
            real_time: false,
            redis: self.redis.clone(),
            with_redis: false,
            tls: self.tls.clone(),
        }
        .start()
        .await
    }

    /// Cancels the server and waits until it has closed every connection.
    pub async fn stop(&mut self) {
        self.app.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
        }
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        response(req.send().await.expect("POST")).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.put(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        response(req.send().await.expect("PUT")).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.patch(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        response(req.send().await.expect("PATCH")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        response(req.send().await.expect("GET")).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.delete(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        response(req.send().await.expect("DELETE")).await
    }

    pub async fn delete_with(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.delete(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        response(req.send().await.expect("DELETE")).await
    }

    /// Creates the first admin through the bootstrap endpoint (first call) and logs in.
    pub async fn admin(&self) -> Staff {
        let secret = self.bootstrap_secret();
        if let Some(secret) = secret {
            let (status, _) = self
                .post(
                    "/api/bootstrap",
                    None,
                    json!({"secret": secret, "username": "admin", "password": PASSWORD}),
                )
                .await;
            // 401 means an earlier call of this test already used it.
            assert!(status == 201 || status == 401, "bootstrap: {status}");
        }
        self.login("admin").await
    }

    pub async fn login(&self, username: &str) -> Staff {
        let (status, body) = self
            .post(
                "/api/session",
                None,
                json!({"username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, 201, "login {username}: {body}");
        Staff {
            id: body["user"]["id"].as_i64().expect("user id"),
            username: username.to_string(),
            token: body["token"].as_str().expect("token").to_string(),
        }
    }

    /// Creates a staff account through the API (as admin) and logs it in.
    pub async fn staff(&self, username: &str, role: &str, capacity: u32) -> Staff {
        let admin = self.admin().await;
        let (status, body) = self
            .post(
                "/api/users",
                Some(&admin.token),
                json!({"username": username, "name": username, "role": role,
                       "password": PASSWORD, "capacity": capacity}),
            )
            .await;
        assert_eq!(status, 201, "create {username}: {body}");
        self.login(username).await
    }

    /// Creates a staff account straight in the store, as `deskgate user add` does: for
    /// gateways that require a second factor, where the users API needs an enrolled admin.
    pub async fn staff_in_store(&self, username: &str, role: deskgate::store::Role) -> i64 {
        let hash =
            deskgate::auth::password::hash(&secrecy::SecretString::from(PASSWORD.to_string()))
                .expect("hash");
        let user = self
            .app
            .store
            .create_user(
                deskgate::store::NewUser {
                    username: username.into(),
                    name: username.into(),
                    role,
                    password_hash: hash,
                    capacity: 5,
                },
                self.clock.now(),
            )
            .await
            .expect("create user");
        user.id.0
    }

    pub async fn agent(&self, username: &str) -> Staff {
        self.staff(username, "agent", 5).await
    }

    /// A new anonymous customer of the demo site.
    pub async fn visitor(&self) -> Visitor {
        self.visitor_with(json!({"site_key": "demo", "name": "Ada"}))
            .await
    }

    pub async fn visitor_with(&self, body: Value) -> Visitor {
        let (status, body) = self.post("/api/visitor", None, body).await;
        assert_eq!(status, 201, "visitor: {body}");
        Visitor {
            customer_id: body["customer"]["id"].as_i64().expect("customer id"),
            token: body["visitor_token"].as_str().expect("token").to_string(),
        }
    }

    /// Connects to `/ws/customer` and completes `hello`; returns the client and `welcome`.
    pub async fn customer_ws(&self, v: &Visitor) -> (WsClient, Value) {
        self.hello("/ws/customer", &v.token, json!([])).await
    }

    pub async fn agent_ws(&self, s: &Staff) -> (WsClient, Value) {
        self.hello("/ws/agent", &s.token, json!([])).await
    }

    pub async fn hello(&self, path: &str, token: &str, resume: Value) -> (WsClient, Value) {
        let mut ws = self.connect(path).await.expect("connect");
        ws.send(json!({"type": "hello", "token": token, "resume": resume}))
            .await;
        let welcome = ws.recv_type("welcome").await;
        (ws, welcome)
    }

    /// A new customer whose first message has opened a ticket.
    pub async fn customer_with_ticket(&self, text: &str) -> Opened {
        let visitor = self.visitor().await;
        let (mut ws, _) = self.customer_ws(&visitor).await;
        let ack = ws.send_text(None, "first", text).await;
        assert_eq!(ack["seq"], 1, "first message of a new ticket: {ack}");
        Opened {
            ticket: ack["ticket"].as_i64().expect("ticket id"),
            conversation: ack["conversation"].as_i64().expect("conversation id"),
            visitor,
            ws,
        }
    }

    /// A customer of the demo site with a signed identity carrying `email`: the registered
    /// address step-up codes go to.
    pub async fn verified_visitor(&self, sub: &str, email: &str) -> Visitor {
        self.verified_visitor_with(sub, email, json!({}), json!({}))
            .await
    }

    /// [`TestApp::verified_visitor`] with more claims in the identity token and more fields
    /// in the `POST /api/visitor` body (`lang`, `site_key` of another site with `secret`).
    pub async fn verified_visitor_with(
        &self,
        sub: &str,
        email: &str,
        claims: Value,
        body: Value,
    ) -> Visitor {
        let secret = match body.get("secret").and_then(Value::as_str) {
            Some(s) => s.to_string(),
            None => std::fs::read_to_string(self.data_dir().join("sites/demo.identity-secret"))
                .expect("the demo site's secret"),
        };
        let token = self.identity_token_signed_with(&secret, sub, email, claims);
        let mut request = json!({"site_key": "demo", "identity_token": token});
        for (k, v) in body.as_object().expect("body is an object") {
            if k != "secret" {
                request[k] = v.clone();
            }
        }
        self.visitor_with(request).await
    }

    /// An identity token signed with a site's `secret`, valid for ten minutes.
    pub fn identity_token_signed_with(
        &self,
        secret: &str,
        sub: &str,
        email: &str,
        claims: Value,
    ) -> String {
        use deskgate::clock::Clock;
        let exp = self.clock.now().millis() / 1000 + 600;
        let mut all = json!({"sub": sub, "name": "Ada Lovelace", "email": email, "exp": exp});
        for (k, v) in claims.as_object().expect("claims are an object") {
            all[k] = v.clone();
        }
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &all,
            &jsonwebtoken::EncodingKey::from_secret(secret.trim().as_bytes()),
        )
        .expect("sign")
    }

    /// An identity token as the demo site would sign it for a logged-in customer (HS256 with
    /// the site's secret from the data dir), valid for ten minutes of the test's clock.
    pub fn identity_token(&self, sub: &str, name: &str, email: &str) -> String {
        self.sign_identity(json!({"sub": sub, "name": name, "email": email}))
    }

    /// [`TestApp::identity_token`] with any claims (`phone`, …); `exp` is added.
    pub fn sign_identity(&self, mut claims: Value) -> String {
        let secret = std::fs::read_to_string(self.data_dir().join("sites/demo.identity-secret"))
            .expect("the demo site's secret");
        claims["exp"] = json!(self.clock.now().millis() / 1000 + 600);
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.trim().as_bytes()),
        )
        .expect("sign")
    }

    /// Says `hello` with a token the gateway should refuse; returns how the connection ended
    /// and every frame that arrived before.
    pub async fn hello_refused(&self, path: &str, token: &str) -> (Closed, Vec<Value>) {
        let mut ws = self.connect(path).await.expect("connect");
        ws.send(json!({"type": "hello", "token": token})).await;
        let closed = ws.closed().await;
        (closed, ws.take_pending())
    }

    /// Runs the periodic sweep's step now: resolved tickets past the reopen window (of the
    /// test's clock) become closed.
    pub async fn close_resolved(&self) -> Vec<i64> {
        let closed = self
            .app
            .store
            .close_resolved(self.app.desk.reopen_after(), self.clock.now())
            .await
            .expect("close resolved tickets");
        closed.iter().map(|t| t.id.0).collect()
    }

    /// Audit entries matching the query string (e.g. `action=pii_revealed&customer=3`),
    /// newest first, read as an admin.
    pub async fn audit(&self, query: &str) -> Vec<Value> {
        let admin = self.admin().await;
        let (status, body) = self
            .get(&format!("/api/audit?{query}"), Some(&admin.token))
            .await;
        assert_eq!(status, 200, "GET /api/audit?{query}: {body}");
        body.as_array().expect("array").clone()
    }

    /// Actions of every audit entry, oldest first, read from the store (for gateways whose
    /// admin cannot log in with a password alone).
    pub async fn audit_actions(&self) -> Vec<String> {
        self.app
            .store
            .audit_after(0, 100_000)
            .await
            .expect("audit entries")
            .into_iter()
            .map(|r| r.entry.action)
            .collect()
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let resp = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(resp.status().as_u16(), 200, "GET /metrics");
        resp.text().await.expect("metrics body")
    }

    /// Opens a WebSocket offering `deskgate.v1`, without saying hello.
    pub async fn connect(&self, path: &str) -> anyhow::Result<WsClient> {
        WsClient::connect_over(
            &self.ws_url(path),
            Some("deskgate.v1"),
            &[],
            self.ws_connector(),
        )
        .await
    }

    /// Opens a WebSocket as a page on `origin` would: with that `Origin` header.
    pub async fn connect_from(&self, origin: &str, path: &str) -> anyhow::Result<WsClient> {
        WsClient::connect_over(
            &self.ws_url(path),
            Some("deskgate.v1"),
            &[("Origin", origin)],
            self.ws_connector(),
        )
        .await
    }

    /// The gateway's own origin, as its pages (the demo, the consoles) send it.
    pub fn own_origin(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// An HTTP request as a page on `origin` would send it; the raw response, headers included.
    pub async fn request_from(
        &self,
        origin: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .request(method, self.url(path))
            .header("Origin", origin);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("request")
    }
}

/// A customer connection whose first message opened `ticket`.
pub struct Opened {
    pub visitor: Visitor,
    pub ws: WsClient,
    pub ticket: i64,
    pub conversation: i64,
}

/// The value of an unlabelled sample in Prometheus text, if present.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (n, v) = line.split_once(' ')?;
        if n == name {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

async fn response(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.app.shutdown.cancel();
    }
}

/// Everything the gateway logs, at every level and through the gateway's own
/// [`deskgate::logging`] filter (as `deskgate serve --log trace` would), from the moment
/// [`LogCapture::install`] is called: for tests that check what never appears in the logs. It
/// installs the process's global subscriber, so it must come before the first [`TestApp`] of
/// the process (nextest runs each test in a process of its own).
#[derive(Clone)]
pub struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn install() -> LogCapture {
        let capture = LogCapture(Arc::default());
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let sink = capture.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
            .with_ansi(false)
            // No timestamps: their digits would only blur what the test looks for.
            .without_time()
            .with_writer(move || sink.clone())
            .finish()
            .with(deskgate::logging::layer())
            .try_init()
            .expect("the log capture is the first subscriber of this process");
        capture
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether `needle` occurs in `haystack` with no ASCII digit right before or after it: a code
/// as a value of its own, not a piece of a longer number.
pub fn contains_number(haystack: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    haystack.windows(n.len()).enumerate().any(|(i, w)| {
        w == n
            && (i == 0 || !haystack[i - 1].is_ascii_digit())
            && haystack
                .get(i + n.len())
                .is_none_or(|b| !b.is_ascii_digit())
    })
}

/// Every file under `dir`, recursively, with its bytes.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

fn init_tracing() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
    });
}

fn frame_schema() -> &'static jsonschema::Validator {
    static SCHEMA: OnceLock<jsonschema::Validator> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.schema.json");
        let text = std::fs::read_to_string(&path).expect("docs/protocol.schema.json");
        let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
        jsonschema::validator_for(&schema).expect("schema compiles")
    })
}

/// Checks a frame the gateway sent against the published schema.
pub fn assert_server_frame(frame: &Value) {
    let schema = frame_schema();
    let wrapped = json!({"direction": "server", "frame": frame});
    if let Err(e) = schema.validate(&wrapped) {
        panic!("frame does not match docs/protocol.schema.json: {e}\nframe: {frame}");
    }
}

/// Checks a frame a client would send against the published schema.
pub fn assert_client_frame(frame: &Value) {
    let schema = frame_schema();
    let wrapped = json!({"direction": "client", "frame": frame});
    if let Err(e) = schema.validate(&wrapped) {
        panic!("client frame does not match docs/protocol.schema.json: {e}\nframe: {frame}");
    }
}

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client speaking deskgate.v1.
pub struct WsClient {
    pub stream: Stream,
    /// Frames received but not yet taken by `recv_type`.
    pending: std::collections::VecDeque<Value>,
    /// Numbers the `ref` of [`WsClient::request`]s.
    next_ref: u64,
}

/// How a connection ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    Code(u16),
    /// The TCP connection ended without a close frame.
    Dropped,
}

impl WsClient {
    pub async fn connect(url: &str, protocol: Option<&str>) -> anyhow::Result<WsClient> {
        Self::connect_with(url, protocol, &[]).await
    }

    /// A `wss://` connection offering deskgate.v1, trusting what `tls` trusts.
    pub async fn connect_tls(
        url: &str,
        tls: Arc<tokio_rustls::rustls::ClientConfig>,
    ) -> anyhow::Result<WsClient> {
        let mut req = url.into_client_request()?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("deskgate.v1"),
        );
        let (stream, _) = tokio_tungstenite::connect_async_tls_with_config(
            req,
            None,
            false,
            Some(tokio_tungstenite::Connector::Rustls(tls)),
        )
        .await?;
        Ok(WsClient {
            stream,
            pending: Default::default(),
            next_ref: 0,
        })
    }

    /// [`WsClient::connect`] with extra request headers (`Origin`, …).
    pub async fn connect_with(
        url: &str,
        protocol: Option<&str>,
        headers: &[(&'static str, &str)],
    ) -> anyhow::Result<WsClient> {
        Self::connect_over(url, protocol, headers, None).await
    }

    /// [`WsClient::connect_with`] over `connector` (for `wss://` to a gateway of a test CA).
    pub async fn connect_over(
        url: &str,
        protocol: Option<&str>,
        headers: &[(&'static str, &str)],
        connector: Option<tokio_tungstenite::Connector>,
    ) -> anyhow::Result<WsClient> {
        let mut req = url.into_client_request()?;
        for (name, value) in headers {
            req.headers_mut()
                .insert(*name, HeaderValue::from_str(value)?);
        }
        if let Some(p) = protocol {
            req.headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p)?);
        }
        let (stream, resp) =
            tokio_tungstenite::connect_async_tls_with_config(req, None, false, connector).await?;
        if protocol.is_some() {
            let chosen = resp
                .headers()
                .get("Sec-WebSocket-Protocol")
                .ok_or_else(|| anyhow!("no subprotocol chosen"))?;
            anyhow::ensure!(chosen == "deskgate.v1", "subprotocol {chosen:?}");
        }
        Ok(WsClient {
            stream,
            pending: Default::default(),
            next_ref: 0,
        })
    }

    /// Sends a frame (checked against the schema unless it is meant to be malformed).
    pub async fn send(&mut self, frame: Value) {
        assert_client_frame(&frame);
        self.send_raw(frame.to_string()).await;
    }

    pub async fn send_raw(&mut self, text: String) {
        self.stream
            .send(Message::Text(text.into()))
            .await
            .expect("send frame");
    }

    /// Next frame from the server, or an error if none comes within [`WAIT`] or the
    /// connection closes.
    pub async fn recv(&mut self) -> anyhow::Result<Value> {
        if let Some(v) = self.pending.pop_front() {
            return Ok(v);
        }
        self.recv_wire(WAIT).await
    }

    async fn recv_wire(&mut self, wait: Duration) -> anyhow::Result<Value> {
        loop {
            let next = tokio::time::timeout(wait, self.stream.next())
                .await
                .context("no frame in time")?;
            match next {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).context("frame is JSON")?;
                    assert_server_frame(&v);
                    return Ok(v);
                }
                Some(Ok(Message::Close(c))) => {
                    bail!("closed: {:?}", c.map(|c| u16::from(c.code)))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => bail!("read error: {e}"),
                None => bail!("connection ended"),
            }
        }
    }

    /// Waits for the next frame of this type; frames of other types stay queued.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        if let Some(i) = self.pending.iter().position(|f| f["type"] == kind) {
            return self.pending.remove(i).expect("index");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let f = self
                .recv_wire(left)
                .await
                .unwrap_or_else(|e| panic!("waiting for {kind}: {e}; queued: {:?}", self.pending));
            if f["type"] == kind {
                return f;
            }
            self.pending.push_back(f);
        }
    }

    /// Waits for a frame matching the predicate; others stay queued.
    pub async fn recv_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i).expect("index");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let f = self
                .recv_wire(left)
                .await
                .unwrap_or_else(|e| panic!("waiting for {what}: {e}; queued: {:?}", self.pending));
            if pred(&f) {
                return f;
            }
            self.pending.push_back(f);
        }
    }

    /// Takes every queued and arriving frame until none arrives for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Value> {
        let mut out: Vec<Value> = self.pending.drain(..).collect();
        while let Ok(v) = self.recv_wire(quiet).await {
            out.push(v);
        }
        out
    }

    /// Asserts that no frame of this type arrives within `quiet`.
    pub async fn expect_none(&mut self, kind: &str, quiet: Duration) {
        let frames = self.drain(quiet).await;
        let found: Vec<_> = frames.iter().filter(|f| f["type"] == kind).collect();
        assert!(found.is_empty(), "unexpected {kind} frames: {found:?}");
        self.pending.extend(frames);
    }

    /// Sends a chat message and waits for its `ack`.
    pub async fn send_text(&mut self, ticket: Option<i64>, client_id: &str, text: &str) -> Value {
        let mut frame = json!({"type": "send", "client_id": client_id, "text": text});
        if let Some(t) = ticket {
            frame["ticket"] = json!(t);
        }
        self.send(frame).await;
        self.recv_where("ack", |f| f["type"] == "ack" && f["client_id"] == client_id)
            .await
    }

    /// Sends a frame under a fresh `ref` and waits for the gateway's direct reply to it
    /// (`ok`, `ack`, `error` or `pong`); other frames stay queued.
    pub async fn request(&mut self, mut frame: Value) -> Value {
        self.next_ref += 1;
        let reference = format!("r{}", self.next_ref);
        frame["ref"] = json!(reference);
        self.send(frame).await;
        self.recv_where(&format!("reply to {reference}"), |f| {
            f["ref"] == reference.as_str()
        })
        .await
    }

    /// Waits for the `message` frames of a conversation up to and including `last`, in the
    /// order they arrive; other frames stay queued.
    pub async fn messages_until(&mut self, conversation: i64, last: i64) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let m = self
                .recv_where(&format!("message {last} of {conversation}"), |f| {
                    f["type"] == "message" && f["conversation"] == conversation
                })
                .await;
            let seq = m["seq"].as_i64().expect("seq");
            out.push(m);
            if seq >= last {
                return out;
            }
        }
    }

    /// Takes the frames received but not yet taken.
    pub fn take_pending(&mut self) -> Vec<Value> {
        self.pending.drain(..).collect()
    }

    /// Reads until the connection closes and returns how it closed.
    pub async fn closed(&mut self) -> Closed {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.stream.next()).await {
                Err(_) => panic!("connection did not close in time"),
                Ok(Some(Ok(Message::Close(Some(c))))) => return Closed::Code(u16::from(c.code)),
                Ok(Some(Ok(Message::Close(None)))) => return Closed::Code(1005),
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("frame is JSON");
                    assert_server_frame(&v);
                    self.pending.push_back(v);
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_))) | Ok(None) => return Closed::Dropped,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .stream
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await;
    }
}
