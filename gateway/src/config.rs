//! Configuration: built-in defaults, overridden by a TOML file (`--config`), overridden by
//! `DESKGATE_*` environment variables, overridden by command-line flags. Every flag has the same
//! key in the file with dashes turned into underscores; unknown keys are an error.

use clap::{Args, ValueEnum};
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Flags of `deskgate serve`. Each is optional here so that a value given in the config file is
/// only replaced by one the operator actually set; the defaults live in [`Config::default`].
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys as the flags, with underscores).
    #[arg(long, env = "DESKGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "DESKGATE_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Directory for the database, keys and outbox [default: ./deskgate-data]
    #[arg(long, env = "DESKGATE_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// URL people use to reach this gateway, for the links it prints [default: http://<listen>]
    #[arg(long, env = "DESKGATE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// URL the other nodes reach this one at, to relay a call's agent leg and call requests
    /// to the node holding the call: `http://10.0.0.5:8080`, or `https://…` when the node
    /// serves TLS itself [default: http(s)://<listen> when it names one address]
    #[arg(long, env = "DESKGATE_NODE_URL", value_name = "URL")]
    pub node_url: Option<String>,

    /// PEM certificates of the authorities that sign the nodes' own certificates, the only ones trusted when relaying to an https node_url [default: the public web's roots]
    #[arg(long, env = "DESKGATE_NODE_CA", value_name = "FILE")]
    pub node_ca: Option<PathBuf>,

    /// Log filter, in tracing's EnvFilter syntax [default: info]
    #[arg(long, env = "DESKGATE_LOG", value_name = "FILTER")]
    pub log: Option<String>,

    /// Log line format [default: text]
    #[arg(long, env = "DESKGATE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Largest WebSocket frame accepted, in bytes [default: 65536]
    #[arg(long, env = "DESKGATE_MAX_FRAME_BYTES", value_name = "BYTES")]
    pub max_frame_bytes: Option<usize>,

    /// Frames per second one connection may send, on average [default: 20]
    #[arg(long, env = "DESKGATE_RATE_PER_SEC", value_name = "N")]
    pub rate_per_sec: Option<u32>,

    /// Frames one connection may send in a burst above the average [default: 60]
    #[arg(long, env = "DESKGATE_RATE_BURST", value_name = "N")]
    pub rate_burst: Option<u32>,

    /// Frames queued for a connection before it counts as too slow and is closed; staff connections eight times as many [default: 256]
    #[arg(long, env = "DESKGATE_OUTBOUND_QUEUE", value_name = "FRAMES")]
    pub outbound_queue: Option<usize>,

    /// Time a new connection has to send its `hello` [default: 10s]
    #[arg(long, env = "DESKGATE_HELLO_TIMEOUT", value_parser = humantime::parse_duration)]
    pub hello_timeout: Option<Duration>,

    /// How long after resolution a customer message reopens a ticket instead of opening a new one [default: 72h]
    #[arg(long, env = "DESKGATE_REOPEN_WINDOW", value_parser = humantime::parse_duration)]
    pub reopen_window: Option<Duration>,

    /// Assign new tickets round-robin to online agents with free capacity [default: off]
    #[arg(long, env = "DESKGATE_AUTO_ASSIGN", num_args = 0..=1, default_missing_value = "true")]
    pub auto_assign: Option<bool>,

    /// Concurrent chats for agents created without an explicit capacity [default: 5]
    #[arg(long, env = "DESKGATE_DEFAULT_CAPACITY", value_name = "N")]
    pub default_capacity: Option<u32>,

    /// Lifetime of a staff login session [default: 12h]
    #[arg(long, env = "DESKGATE_SESSION_TTL", value_parser = humantime::parse_duration)]
    pub session_ttl: Option<Duration>,

    /// A staff session unused for this long stops working (`0s`: no idle timeout) [default: 2h]
    #[arg(long, env = "DESKGATE_SESSION_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub session_idle_timeout: Option<Duration>,

    /// Lifetime of a customer's visitor token [default: 30days]
    #[arg(long, env = "DESKGATE_VISITOR_TTL", value_parser = humantime::parse_duration)]
    pub visitor_ttl: Option<Duration>,

    /// How long a write waits for a locked database before the sender gets `unavailable` [default: 5s]
    #[arg(long, env = "DESKGATE_STORE_BUSY_TIMEOUT", value_parser = humantime::parse_duration)]
    pub store_busy_timeout: Option<Duration>,

    /// Largest file a customer or agent may attach, in bytes [default: 10485760 (10 MiB)]
    #[arg(long, env = "DESKGATE_ATTACHMENT_MAX_BYTES", value_name = "BYTES")]
    pub attachment_max_bytes: Option<usize>,

    /// Serve TLS with this PEM certificate chain (with --tls-key); re-read on SIGHUP and when the file changes [default: plain HTTP]
    #[arg(long, env = "DESKGATE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1)
    #[arg(long, env = "DESKGATE_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// How often the TLS files are checked for a change [default: 30s]
    #[arg(long, env = "DESKGATE_TLS_WATCH_EVERY", value_parser = humantime::parse_duration)]
    pub tls_watch_every: Option<Duration>,

    /// Proxies (CIDRs, comma-separated) whose X-Forwarded-For is believed for the client's address [default: none]
    #[arg(
        long,
        env = "DESKGATE_TRUSTED_PROXIES",
        value_name = "CIDR,...",
        value_delimiter = ','
    )]
    pub trusted_proxies: Option<Vec<String>>,

    /// Enforce the per-IP, per-visitor and per-user rate limits (`false` for load tests) [default: true]
    #[arg(long, env = "DESKGATE_RATE_LIMITS", value_name = "BOOL")]
    pub rate_limits: Option<bool>,

    /// WebSocket connections one client address may hold open [default: 50]
    #[arg(long, env = "DESKGATE_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,

    /// Time a client has to send its request headers (and finish the TLS handshake) [default: 10s]
    #[arg(long, env = "DESKGATE_HEADER_READ_TIMEOUT", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Option<Duration>,

    /// A WebSocket from which nothing (not even a pong) arrives for this long is closed [default: 90s]
    #[arg(long, env = "DESKGATE_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub idle_timeout: Option<Duration>,

    /// Largest REST request body, in bytes [default: 65536]
    #[arg(long, env = "DESKGATE_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,

    /// PostgreSQL database shared by every node, `postgres://user:pass@host/db`; prefer
    /// --database-url-file when it holds a password [default: SQLite under --data]
    #[arg(
        long,
        env = "DESKGATE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// File holding the database URL (a mounted secret)
    #[arg(long, env = "DESKGATE_DATABASE_URL_FILE", value_name = "FILE")]
    pub database_url_file: Option<PathBuf>,

    /// Redis that carries live events between nodes, `redis://host:6379/`; prefer
    /// --redis-url-file when it holds a password [default: none, one node]
    #[arg(
        long,
        env = "DESKGATE_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,

    /// File holding the Redis URL (a mounted secret)
    #[arg(long, env = "DESKGATE_REDIS_URL_FILE", value_name = "FILE")]
    pub redis_url_file: Option<PathBuf>,

    /// Redis servers to spread the live events between nodes over, comma-separated; each
    /// conversation's events go through one of them [default: the --redis-url server alone]
    #[arg(
        long,
        env = "DESKGATE_BUS_REDIS_URLS",
        value_name = "URLS",
        hide_env_values = true
    )]
    pub bus_redis_urls: Option<String>,

    /// File holding the bus's Redis URLs, one per line (a mounted secret)
    #[arg(long, env = "DESKGATE_BUS_REDIS_URLS_FILE", value_name = "FILE")]
    pub bus_redis_urls_file: Option<PathBuf>,

    /// How long a node's agents stay listed in Redis without a heartbeat (a node killed
    /// without a goodbye); it refreshes them every third of this [default: 15s]
    #[arg(long, env = "DESKGATE_PRESENCE_TTL", value_parser = humantime::parse_duration)]
    pub presence_ttl: Option<Duration>,

    /// How long a stopping node (SIGTERM) lets its connections finish before it exits [default: 10s]
    #[arg(long, env = "DESKGATE_DRAIN_DEADLINE", value_parser = humantime::parse_duration)]
    pub drain_deadline: Option<Duration>,

    /// Boxed: these flags would otherwise make every `ServeArgs` value large.
    #[command(flatten)]
    pub verification: Box<crate::stepup::config::VerificationArgs>,
    /// Ed25519 key that signs audit-log checkpoints; keep it apart from the database
    /// [default: <data>/keys/audit-checkpoint.key, created 0600 on first run]
    #[arg(long, env = "DESKGATE_AUDIT_KEY_FILE", value_name = "FILE")]
    pub audit_key_file: Option<PathBuf>,

    /// Sign a checkpoint of the audit log every this many entries [default: 100]
    #[arg(long, env = "DESKGATE_AUDIT_CHECKPOINT_EVERY", value_name = "N")]
    pub audit_checkpoint_every: Option<u64>,

    /// Append-only file every signed audit checkpoint is also written to, outside the database
    /// [default: audit-checkpoints.jsonl beside the checkpoint key]
    #[arg(long, env = "DESKGATE_AUDIT_CHECKPOINT_LOG", value_name = "FILE")]
    pub audit_checkpoint_log: Option<PathBuf>,

    /// A second file each signed checkpoint is appended to (a SIEM-watched or WORM path) [default: none]
    #[arg(long, env = "DESKGATE_AUDIT_CHECKPOINT_COPY", value_name = "FILE")]
    pub audit_checkpoint_copy: Option<PathBuf>,

    /// Access an approved grant gives when the request names no duration [default: 1h]
    #[arg(long, env = "DESKGATE_GRANT_DEFAULT_DURATION", value_parser = humantime::parse_duration)]
    pub grant_default_duration: Option<Duration>,

    /// Longest access one grant request may ask for [default: 8h]
    #[arg(long, env = "DESKGATE_GRANT_MAX_DURATION", value_parser = humantime::parse_duration)]
    pub grant_max_duration: Option<Duration>,

    /// How long an access request waits for review before it expires [default: 24h]
    #[arg(long, env = "DESKGATE_GRANT_PENDING_TTL", value_parser = humantime::parse_duration)]
    pub grant_pending_ttl: Option<Duration>,

    /// Keyring file (mounted from a secret manager); must exist [default: <data>/keyring.json, created on first run]
    #[arg(long, env = "DESKGATE_KEYRING_FILE", value_name = "FILE")]
    pub keyring_file: Option<PathBuf>,

    /// How long a closed ticket's transcript is kept before its data key is destroyed [default: 365days]
    #[arg(long, env = "DESKGATE_TRANSCRIPT_RETENTION", value_parser = humantime::parse_duration)]
    pub transcript_retention: Option<Duration>,

    /// How long a customer's record (name, email, phone) is kept after their last activity before its data key is destroyed [default: 730days]
    #[arg(long, env = "DESKGATE_CUSTOMER_RETENTION", value_parser = humantime::parse_duration)]
    pub customer_retention: Option<Duration>,

    /// How long a call recording is kept after the call ends (then its key is destroyed and its file deleted, unless its ticket is on legal hold) [default: 365days]
    #[arg(long, env = "DESKGATE_RECORDING_RETENTION", value_parser = humantime::parse_duration)]
    pub recording_retention: Option<Duration>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// One embedding site: the widget presents `key`; identity tokens from that site are signed
/// with its secret.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub key: String,
    #[serde(default)]
    pub name: Option<String>,
    /// HMAC-SHA256 secret for identity tokens (JWT HS256). Prefer `identity_secret_file`.
    #[serde(default)]
    pub identity_secret: Option<SecretString>,
    #[serde(default)]
    pub identity_secret_file: Option<PathBuf>,
    /// Origins of the pages allowed to embed this site's widget (`https://shop.example`),
    /// besides the gateway's own; a browser on any other page is refused.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Ask for a name and an optional email before the first message (the widget's pre-chat
    /// form); a page may still override it with `data-prechat="on"` or `"off"`.
    #[serde(default)]
    pub prechat: bool,
    /// Language of code emails to this site's customers whose own language is not known
    /// (`en`, `ru`, `zh`, `fa`); the global `email_language` otherwise.
    #[serde(default)]
    pub language: Option<String>,
    /// The Twilio account's auth token: phone streams to `/media/twilio?site=<key>` that carry
    /// a valid `X-Twilio-Signature` are admitted without a media token. Prefer
    /// `twilio_auth_token_file`.
    #[serde(default)]
    pub twilio_auth_token: Option<SecretString>,
    #[serde(default)]
    pub twilio_auth_token_file: Option<PathBuf>,
}

/// The config file. Every field is optional; absent ones keep their default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    public_url: Option<String>,
    node_url: Option<String>,
    node_ca: Option<PathBuf>,
    log: Option<String>,
    log_format: Option<LogFormat>,
    max_frame_bytes: Option<usize>,
    rate_per_sec: Option<u32>,
    rate_burst: Option<u32>,
    outbound_queue: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    hello_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    reopen_window: Option<Duration>,
    auto_assign: Option<bool>,
    default_capacity: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    session_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    session_idle_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    visitor_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    store_busy_timeout: Option<Duration>,
    attachment_max_bytes: Option<usize>,
    database_url: Option<String>,
    database_url_file: Option<PathBuf>,
    redis_url: Option<String>,
    redis_url_file: Option<PathBuf>,
    bus_redis_urls: Option<String>,
    bus_redis_urls_file: Option<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    presence_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    drain_deadline: Option<Duration>,
    keyring_file: Option<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    transcript_retention: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    customer_retention: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    recording_retention: Option<Duration>,
    #[serde(default)]
    sites: Vec<SiteConfig>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    tls_watch_every: Option<Duration>,
    trusted_proxies: Option<Vec<String>>,
    rate_limits: Option<bool>,
    max_connections_per_ip: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    header_read_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    idle_timeout: Option<Duration>,
    max_body_bytes: Option<usize>,
    /// `[limits]`: the rates of each rule.
    #[serde(default)]
    limits: Option<crate::limits::RatesFile>,
    /// `[alerts]`: anomaly thresholds and the webhook.
    #[serde(default)]
    alerts: Option<crate::anomaly::AlertsFile>,
    #[serde(default)]
    verification: Option<crate::stepup::config::VerificationFile>,
    audit_key_file: Option<PathBuf>,
    audit_checkpoint_every: Option<u64>,
    audit_checkpoint_log: Option<PathBuf>,
    audit_checkpoint_copy: Option<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    grant_default_duration: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    grant_max_duration: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    grant_pending_ttl: Option<Duration>,
}

/// The settings the server runs with, after all sources are merged.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub public_url: Option<String>,
    /// Where the other nodes reach this one; `None`: from the listen address.
    pub node_url: Option<String>,
    /// Authorities trusted for the other nodes' certificates; `None`: the public web's roots.
    pub node_ca: Option<PathBuf>,
    pub log: String,
    pub log_format: LogFormat,
    pub ws: WsConfig,
    pub desk: DeskConfig,
    /// The absolute lifetime of a staff session.
    pub session_ttl: Duration,
    /// A staff session unused for this long stops working; `None`: never.
    pub session_idle_timeout: Option<Duration>,
    pub visitor_ttl: Duration,
    pub store_busy_timeout: Duration,
    /// Largest attachment accepted; a larger upload gets 413.
    pub attachment_max_bytes: usize,
    /// Where the durable store lives: SQLite under the data dir, or a shared PostgreSQL.
    pub database: Database,
    /// Redis for live events between nodes; `None`: the in-process bus of one node.
    pub redis_url: Option<SecretString>,
    /// Redis servers the live events between nodes are spread over; empty: `redis_url`'s.
    pub bus_redis_urls: Vec<SecretString>,
    /// With Redis: how long a node's agents stay listed there without a heartbeat.
    pub presence_ttl: Duration,
    /// How long a stopping node lets its connections finish (SIGTERM) before it exits.
    pub drain_deadline: Duration,
    /// The keyring; `None`: `keyring.json` in the data dir, created on first run.
    pub keyring_file: Option<PathBuf>,
    /// How long each kind of object is kept after it ends (transcripts, customer records,
    /// recordings); crypto-shredded after, unless on legal hold.
    pub retention: recorder::retention::Retention,
    /// Sites from the config file; a `demo` site is added when none is configured.
    pub sites: Vec<SiteConfig>,
    /// Step-up verification and staff second factors (`[verification]`).
    pub verification: crate::stepup::config::VerificationConfig,
    pub audit: AuditConfig,
    /// Limits of access grants (durations, how long a request waits for review).
    pub grants: recorder::grant::Policy,
    /// Calls (`/media/twilio`, `/media/pcm`) and their recordings.
    pub voice: crate::voice::VoiceConfig,
    /// TLS; `None` serves plain HTTP (behind a TLS-terminating proxy).
    pub tls: Option<crate::tls::TlsConfig>,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub limits: crate::limits::LimitsConfig,
    pub alerts: crate::anomaly::AlertsConfig,
}

/// The durable store's engine.
#[derive(Clone, Debug)]
pub enum Database {
    /// `deskgate.db` under the data dir: one node, nothing to set up.
    Sqlite,
    /// A PostgreSQL database shared by many nodes; the URL may hold a password.
    Postgres(SecretString),
}

impl Database {
    /// Parses a `--database-url`: only `postgres://` and `postgresql://` URLs are accepted
    /// (SQLite is the default and needs no URL).
    pub fn parse(url: &str) -> Result<Database, String> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Database::Postgres(SecretString::from(url.to_string())))
        } else {
            Err(
                "must be a postgres:// URL (without it the store is SQLite under the data dir)"
                    .into(),
            )
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }
}

/// The audit log's checkpoints.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// The checkpoint signing key; `None` is `<data>/keys/audit-checkpoint.key`.
    pub key_file: Option<PathBuf>,
    pub checkpoint_every: u64,
    /// The checkpoint log; `None` is `audit-checkpoints.jsonl` beside the key.
    pub log_file: Option<PathBuf>,
    /// A second checkpoint log, if any.
    pub copy_file: Option<PathBuf>,
}

/// Limits of one WebSocket connection.
#[derive(Clone, Debug)]
pub struct WsConfig {
    pub max_frame_bytes: usize,
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    pub outbound_queue: usize,
    pub hello_timeout: Duration,
}

/// How tickets move through the queue.
#[derive(Clone, Debug)]
pub struct DeskConfig {
    pub reopen_window: Duration,
    pub auto_assign: bool,
    pub default_capacity: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data: PathBuf::from("./deskgate-data"),
            public_url: None,
            node_url: None,
            node_ca: None,
            log: "info".into(),
            log_format: LogFormat::Text,
            ws: WsConfig {
                max_frame_bytes: 64 * 1024,
                rate_per_sec: 20,
                rate_burst: 60,
                outbound_queue: 256,
                hello_timeout: Duration::from_secs(10),
            },
            desk: DeskConfig {
                reopen_window: Duration::from_secs(72 * 3600),
                auto_assign: false,
                default_capacity: 5,
            },
            session_ttl: Duration::from_secs(12 * 3600),
            session_idle_timeout: Some(Duration::from_secs(2 * 3600)),
            visitor_ttl: Duration::from_secs(30 * 24 * 3600),
            store_busy_timeout: Duration::from_secs(5),
            attachment_max_bytes: 10 * 1024 * 1024,
            database: Database::Sqlite,
            redis_url: None,
            bus_redis_urls: Vec::new(),
            presence_ttl: Duration::from_secs(15),
            drain_deadline: Duration::from_secs(10),
            keyring_file: None,
            retention: recorder::retention::Retention::default(),
            sites: Vec::new(),
            verification: Default::default(),
            audit: AuditConfig {
                key_file: None,
                checkpoint_every: 100,
                log_file: None,
                copy_file: None,
            },
            grants: recorder::grant::Policy::default(),
            voice: Default::default(),
            tls: None,
            trusted_proxies: Vec::new(),
            limits: crate::limits::LimitsConfig::default(),
            alerts: crate::anomaly::AlertsConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Merges the config file named by `args.config` (if any) with the flags and environment.
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Config::merge(args, file)
    }

    /// As [`Config::load`], with the config file's text given instead of read from
    /// `args.config` (which only names the file in errors).
    pub fn load_text(args: &ServeArgs, text: &str) -> Result<Config, ConfigError> {
        let path = args.config.clone().unwrap_or_default();
        Config::merge(args, parse_file(&path, text)?)
    }

    fn merge(args: &ServeArgs, file: FileConfig) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        macro_rules! take {
            ($($field:ident),* ; $($ws:ident),* ; $($desk:ident),*) => {
                $( if let Some(v) = args.$field.clone().or(file.$field.clone()) { c.$field = v; } )*
                $( if let Some(v) = args.$ws.clone().or(file.$ws.clone()) { c.ws.$ws = v; } )*
                $( if let Some(v) = args.$desk.clone().or(file.$desk.clone()) { c.desk.$desk = v; } )*
            };
        }
        take!(listen, data, log, log_format, session_ttl, visitor_ttl, store_busy_timeout,
              attachment_max_bytes;
              max_frame_bytes, rate_per_sec, rate_burst, outbound_queue, hello_timeout;
              reopen_window, auto_assign, default_capacity);
        c.public_url = args.public_url.clone().or(file.public_url);
        c.keyring_file = args.keyring_file.clone().or(file.keyring_file);
        let url = crate::stepup::config::secret_value(
            "database_url",
            args.database_url.clone().or(file.database_url),
            args.database_url_file.clone().or(file.database_url_file),
        )
        .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        if let Some(url) = url {
            c.database = Database::parse(&url).map_err(|message| ConfigError::Invalid {
                key: "database_url",
                message,
            })?;
        }
        let redis = crate::stepup::config::secret_value(
            "redis_url",
            args.redis_url.clone().or(file.redis_url),
            args.redis_url_file.clone().or(file.redis_url_file),
        )
        .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        if let Some(url) = redis {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(ConfigError::Invalid {
                    key: "redis_url",
                    message: "must be a redis:// or rediss:// URL".into(),
                });
            }
            c.redis_url = Some(SecretString::from(url));
        }
        let bus = crate::stepup::config::secret_value(
            "bus_redis_urls",
            args.bus_redis_urls.clone().or(file.bus_redis_urls),
            args.bus_redis_urls_file
                .clone()
                .or(file.bus_redis_urls_file),
        )
        .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        if let Some(urls) = bus {
            c.bus_redis_urls = bus_urls(&urls).map_err(|message| ConfigError::Invalid {
                key: "bus_redis_urls",
                message,
            })?;
            if c.redis_url.is_none() {
                return Err(ConfigError::Invalid {
                    key: "bus_redis_urls",
                    message: "needs redis_url too (presence, limits and step-up stay there)".into(),
                });
            }
        }
        if let Some(d) = args.drain_deadline.or(file.drain_deadline) {
            c.drain_deadline = d;
        }
        if let Some(d) = args.presence_ttl.or(file.presence_ttl) {
            c.presence_ttl = d;
        }
        use recorder::retention::{CUSTOMER, RECORDING, TRANSCRIPT};
        for (kind, v) in [
            (
                TRANSCRIPT,
                args.transcript_retention.or(file.transcript_retention),
            ),
            (
                CUSTOMER,
                args.customer_retention.or(file.customer_retention),
            ),
            (
                RECORDING,
                args.recording_retention.or(file.recording_retention),
            ),
        ] {
            if let Some(v) = v {
                c.retention = c.retention.clone().with(kind, v);
            }
        }
        if let Some(d) = args.session_idle_timeout.or(file.session_idle_timeout) {
            c.session_idle_timeout = (!d.is_zero()).then_some(d);
        }
        c.sites = file.sites;
        c.tls = match (
            args.tls_cert.clone().or(file.tls_cert),
            args.tls_key.clone().or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsConfig {
                cert,
                key,
                watch_every: args
                    .tls_watch_every
                    .or(file.tls_watch_every)
                    .unwrap_or(Duration::from_secs(30)),
            }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    key: "tls_cert",
                    message: "give both tls_cert and tls_key, or neither".into(),
                })
            }
        };
        for cidr in args
            .trusted_proxies
            .clone()
            .or(file.trusted_proxies)
            .unwrap_or_default()
        {
            let cidr = cidr.trim();
            if cidr.is_empty() {
                continue;
            }
            let net = crate::proxy::parse_cidr(cidr).map_err(|message| ConfigError::Invalid {
                key: "trusted_proxies",
                message,
            })?;
            c.trusted_proxies.push(net);
        }
        c.node_url =
            match args.node_url.clone().or(file.node_url) {
                Some(url) => Some(node_url(&url, c.tls.is_some()).map_err(|message| {
                    ConfigError::Invalid {
                        key: "node_url",
                        message,
                    }
                })?),
                None => None,
            };
        c.node_ca = args.node_ca.clone().or(file.node_ca);
        if let Some(rates) = file.limits {
            c.limits.rates =
                rates
                    .merge(c.limits.rates.clone())
                    .map_err(|message| ConfigError::Invalid {
                        key: "limits",
                        message,
                    })?;
        }
        if let Some(v) = args.rate_limits.or(file.rate_limits) {
            c.limits.enabled = v;
        }
        if let Some(v) = args.max_connections_per_ip.or(file.max_connections_per_ip) {
            c.limits.max_connections_per_ip = v;
        }
        if let Some(v) = args.header_read_timeout.or(file.header_read_timeout) {
            c.limits.header_read_timeout = v;
        }
        if let Some(v) = args.idle_timeout.or(file.idle_timeout) {
            c.limits.idle_timeout = v;
        }
        if let Some(v) = args.max_body_bytes.or(file.max_body_bytes) {
            c.limits.max_body_bytes = v;
        }
        if let Some(alerts) = file.alerts {
            c.alerts = alerts
                .into_config()
                .map_err(|message| ConfigError::Invalid {
                    key: "alerts",
                    message,
                })?;
        }
        c.verification =
            crate::stepup::config::VerificationConfig::load(&args.verification, file.verification)
                .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        c.audit.key_file = args.audit_key_file.clone().or(file.audit_key_file);
        if let Some(n) = args.audit_checkpoint_every.or(file.audit_checkpoint_every) {
            c.audit.checkpoint_every = n;
        }
        c.audit.log_file = args
            .audit_checkpoint_log
            .clone()
            .or(file.audit_checkpoint_log);
        c.audit.copy_file = args
            .audit_checkpoint_copy
            .clone()
            .or(file.audit_checkpoint_copy);
        if let Some(d) = args.grant_default_duration.or(file.grant_default_duration) {
            c.grants.default_duration = d;
        }
        if let Some(d) = args.grant_max_duration.or(file.grant_max_duration) {
            c.grants.max_duration = d;
        }
        if let Some(d) = args.grant_pending_ttl.or(file.grant_pending_ttl) {
            c.grants.pending_ttl = d;
        }
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.into(),
            })
        };
        if self.ws.max_frame_bytes < 1024 {
            return invalid("max_frame_bytes", "must be at least 1024");
        }
        if self.ws.rate_per_sec == 0 || self.ws.rate_burst == 0 {
            return invalid("rate_per_sec", "rate and burst must be at least 1");
        }
        if self.ws.outbound_queue < 8 {
            return invalid("outbound_queue", "must be at least 8");
        }
        if self.attachment_max_bytes == 0 || self.attachment_max_bytes > 64 * 1024 * 1024 {
            return invalid("attachment_max_bytes", "must be 1 byte to 64 MiB");
        }
        if self.limits.max_connections_per_ip == 0 {
            return invalid("max_connections_per_ip", "must be at least 1");
        }
        if self.limits.header_read_timeout < Duration::from_millis(100) {
            return invalid("header_read_timeout", "must be at least 100ms");
        }
        if self.limits.idle_timeout < Duration::from_millis(100) {
            return invalid("idle_timeout", "must be at least 100ms");
        }
        if self.limits.max_body_bytes < 1024 {
            return invalid("max_body_bytes", "must be at least 1024");
        }
        if self.audit.checkpoint_every == 0 {
            return invalid("audit_checkpoint_every", "must be at least 1");
        }
        let minute = Duration::from_secs(60);
        let g = &self.grants;
        if g.max_duration < minute
            || g.default_duration < minute
            || g.default_duration > g.max_duration
        {
            return invalid(
                "grant_default_duration",
                "grant durations must be at least 1m, the default no longer than the maximum",
            );
        }
        if g.pending_ttl < minute {
            return invalid("grant_pending_ttl", "must be at least 1m");
        }
        for (key, kind) in [
            ("transcript_retention", recorder::retention::TRANSCRIPT),
            ("customer_retention", recorder::retention::CUSTOMER),
            ("recording_retention", recorder::retention::RECORDING),
        ] {
            if self
                .retention
                .keep_for(kind)
                .is_some_and(|d| d < Duration::from_secs(3600))
            {
                return invalid(key, "must be at least 1h");
            }
        }
        if self.presence_ttl < std::time::Duration::from_secs(1) {
            return invalid("presence_ttl", "must be at least 1s");
        }
        if self.desk.default_capacity == 0 {
            return invalid("default_capacity", "must be at least 1");
        }
        let mut keys = std::collections::HashSet::new();
        for site in &self.sites {
            if site.key.is_empty() || !keys.insert(site.key.as_str()) {
                return invalid("sites", "every site needs a unique, non-empty key");
            }
            if site.identity_secret.is_some() && site.identity_secret_file.is_some() {
                return invalid(
                    "sites",
                    "give identity_secret or identity_secret_file, not both",
                );
            }
            for origin in &site.allowed_origins {
                if let Err(why) = crate::origin::Origin::parse(origin) {
                    return invalid("sites.allowed_origins", &why);
                }
            }
            if let Some(lang) = &site.language {
                if let Err(why) = crate::stepup::config::parse_language(lang) {
                    return invalid("sites.language", &why);
                }
            }
        }
        Ok(())
    }

    /// Where the other nodes reach this one, to relay calls: `node_url`, else the listen
    /// address when it names one (not 0.0.0.0), `https://` when the node serves TLS; `None`:
    /// calls held here are not offered to other nodes.
    pub fn node_base(&self, bound: SocketAddr) -> Option<String> {
        match &self.node_url {
            Some(u) => Some(u.clone()),
            None if bound.ip().is_unspecified() => None,
            None if self.tls.is_some() => Some(format!("https://{bound}")),
            None => Some(format!("http://{bound}")),
        }
    }

    /// The base URL printed for people: `public_url`, else derived from the listen address.
    pub fn base_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{bound}"),
        }
    }
}

/// The bus's Redis URLs: separated by commas, spaces or lines, each `redis://` or `rediss://`.
fn bus_urls(list: &str) -> Result<Vec<SecretString>, String> {
    let urls: Vec<&str> = list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        return Err("no URL given".into());
    }
    urls.iter()
        .enumerate()
        .map(|(i, u)| {
            if u.starts_with("redis://") || u.starts_with("rediss://") {
                Ok(SecretString::from(u.to_string()))
            } else {
                Err(format!("URL {} must be a redis:// or rediss:// URL", i + 1))
            }
        })
        .collect()
}

/// Checks `node_url`: HTTP or HTTPS to a host and port, without a path. A node that serves
/// TLS itself has no plain listener, so it is reached over HTTPS; one that does not may still
/// be reached over HTTPS, through a proxy of its own in front of it.
fn node_url(url: &str, tls: bool) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}`: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(format!(
            "`{url}` must be http://host:port or https://host:port"
        ));
    }
    if tls && parsed.scheme() != "https" {
        return Err(format!(
            "`{url}`: a node that serves TLS itself is reached over https://, not in plain HTTP"
        ));
    }
    if parsed.path() != "/" || parsed.query().is_some() || !parsed.username().is_empty() {
        return Err(format!(
            "`{url}` must be a scheme, host and port, without a path"
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_file(path, &text)
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config of a file holding `toml`, or the error's text.
    fn load(toml: &str) -> Result<Config, String> {
        let f = write(toml);
        let args = ServeArgs {
            config: Some(f.path().into()),
            ..Default::default()
        };
        Config::load(&args).map_err(|e| e.to_string())
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn defaults_without_any_source() {
        let c = Config::load(&ServeArgs::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data, PathBuf::from("./deskgate-data"));
        assert_eq!(c.ws.max_frame_bytes, 65536);
    }

    #[test]
    fn flags_override_file() {
        let f = write("listen = \"127.0.0.1:9000\"\nreopen_window = \"1h\"\nauto_assign = true\n");
        let args = ServeArgs {
            config: Some(f.path().into()),
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.desk.reopen_window, Duration::from_secs(3600));
        assert!(c.desk.auto_assign);
    }

    #[test]
    fn unknown_key_is_a_clear_error() {
        let f = write("listen = \"127.0.0.1:9000\"\nlisten_port = 9\n");
        let args = ServeArgs {
            config: Some(f.path().into()),
            ..Default::default()
        };
        let err = Config::load(&args).unwrap_err().to_string();
        assert!(err.contains("unknown field `listen_port`"), "{err}");
    }

    #[test]
    fn grant_limits_and_the_audit_key_come_from_the_file() {
        let f = write(
            "grant_max_duration = \"2h\"\ngrant_pending_ttl = \"1h\"\n\
             audit_key_file = \"/run/secrets/audit.key\"\naudit_checkpoint_every = 10\n",
        );
        let args = ServeArgs {
            config: Some(f.path().into()),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!(c.grants.max_duration, Duration::from_secs(7200));
        assert_eq!(c.grants.pending_ttl, Duration::from_secs(3600));
        assert_eq!(c.grants.default_duration, Duration::from_secs(3600));
        assert_eq!(
            c.audit.key_file,
            Some(PathBuf::from("/run/secrets/audit.key"))
        );
        assert_eq!(c.audit.checkpoint_every, 10);

        let f = write("grant_default_duration = \"9h\"\n");
        let args = ServeArgs {
            config: Some(f.path().into()),
            ..Default::default()
        };
        let err = Config::load(&args).unwrap_err().to_string();
        assert!(err.contains("grant_default_duration"), "{err}");
    }

    #[test]
    fn each_kind_has_its_retention_from_flags_or_the_file() {
        use recorder::retention::{CUSTOMER, RECORDING, TRANSCRIPT};
        let f = write("customer_retention = \"90days\"\nrecording_retention = \"30days\"\n");
        let args = ServeArgs {
            config: Some(f.path().into()),
            transcript_retention: Some(Duration::from_secs(7 * 86400)),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        let r = &c.retention;
        assert_eq!(r.keep_for(TRANSCRIPT), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(r.keep_for(CUSTOMER), Some(Duration::from_secs(90 * 86400)));
        assert_eq!(r.keep_for(RECORDING), Some(Duration::from_secs(30 * 86400)));
        let f = write("customer_retention = \"5m\"\n");
        let args = ServeArgs {
            config: Some(f.path().into()),
            ..Default::default()
        };
        let err = Config::load(&args).unwrap_err().to_string();
        assert!(err.contains("customer_retention"), "{err}");
    }

    #[test]
    fn hardening_settings_come_from_the_file_or_say_what_is_wrong() {
        let c = load(
            "tls_cert = \"/etc/tls/c.pem\"\ntls_key = \"/etc/tls/k.pem\"\n\
             trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]\nrate_limits = false\n\
             session_idle_timeout = \"0s\"\n[limits]\nlogin_per_ip = \"5/1m\"\n",
        )
        .unwrap();
        assert_eq!(c.tls.unwrap().cert, PathBuf::from("/etc/tls/c.pem"));
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(!c.limits.enabled);
        assert_eq!(c.limits.rates.login_per_ip, crate::limits::Rate::new(5, 60));
        assert_eq!(c.session_idle_timeout, None);
        let err = load("tls_cert = \"/etc/tls/c.pem\"\n").unwrap_err();
        assert!(err.contains("tls_cert and tls_key"), "{err}");
        let err = load("trusted_proxies = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert!(
            err.contains("trusted_proxies") && err.contains("10.0.0.0/33"),
            "{err}"
        );
        let err = load("[limits]\nlogin_per_ip = \"lots\"\n").unwrap_err();
        assert!(err.contains("count/period"), "{err}");
        let err = load("[limits]\nlogins = \"1/1m\"\n").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn invalid_values_are_refused() {
        let f = write("max_frame_bytes = 10\n");
        let args = ServeArgs {
            config: Some(f.path().into()),
            ..Default::default()
        };
        assert!(Config::load(&args).is_err());
    }

    #[test]
    fn a_node_url_is_http_or_https_to_a_host() {
        let c = load("node_url = \"http://10.0.0.5:8080/\"\n").unwrap();
        assert_eq!(c.node_url.as_deref(), Some("http://10.0.0.5:8080"));
        let bound: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(c.node_base(bound).as_deref(), Some("http://10.0.0.5:8080"));
        // Without one: the listen address when it names one.
        let c = load("").unwrap();
        assert_eq!(c.node_base(bound), None);
        let one: SocketAddr = "10.0.0.5:8080".parse().unwrap();
        assert_eq!(c.node_base(one).as_deref(), Some("http://10.0.0.5:8080"));
        for bad in [
            "http://10.0.0.5/deskgate",
            "https://10.0.0.5:8443/x",
            "ftp://x",
            "nonsense",
        ] {
            let err = load(&format!("node_url = \"{bad}\"\n")).unwrap_err();
            assert!(err.contains("node_url"), "{bad}: {err}");
        }
        // A node behind a proxy of its own may be reached over HTTPS.
        let c = load("node_url = \"https://node-1.internal:8443\"\n").unwrap();
        assert_eq!(c.node_url.as_deref(), Some("https://node-1.internal:8443"));

        // A node that serves TLS: over HTTPS only, by default at its listen address.
        let tls = "tls_cert = \"/etc/tls/c.pem\"\ntls_key = \"/etc/tls/k.pem\"\n\
                   node_ca = \"/etc/tls/nodes.pem\"\n";
        let err = load(&format!("{tls}node_url = \"http://10.0.0.5:8080\"\n")).unwrap_err();
        assert!(err.contains("https://"), "{err}");
        let c = load(&format!("{tls}node_url = \"https://10.0.0.5:8443\"\n")).unwrap();
        assert_eq!(c.node_url.as_deref(), Some("https://10.0.0.5:8443"));
        assert_eq!(c.node_ca, Some(PathBuf::from("/etc/tls/nodes.pem")));
        let c = load(tls).unwrap();
        assert_eq!(c.node_base(one).as_deref(), Some("https://10.0.0.5:8080"));
        assert_eq!(c.node_base(bound), None);
    }

    #[test]
    fn the_bus_may_be_spread_over_several_redis_servers() {
        use secrecy::ExposeSecret;
        let c = load(
            "redis_url = \"redis://r:6379/\"\n\
             bus_redis_urls = \"redis://b1:6379/, rediss://b2:6380/\\nredis://b3/\"\n",
        )
        .unwrap();
        let urls: Vec<&str> = c.bus_redis_urls.iter().map(|u| u.expose_secret()).collect();
        assert_eq!(
            urls,
            ["redis://b1:6379/", "rediss://b2:6380/", "redis://b3/"]
        );
        let err = load("bus_redis_urls = \"redis://b1/\"\n").unwrap_err();
        assert!(err.contains("needs redis_url"), "{err}");
        let err = load("redis_url = \"redis://r/\"\nbus_redis_urls = \"redis://b1/,http://x\"\n")
            .unwrap_err();
        assert!(err.contains("URL 2 must be"), "{err}");
        let err = load("redis_url = \"redis://r/\"\nbus_redis_urls = \" , \"\n").unwrap_err();
        assert!(err.contains("no URL"), "{err}");
    }

    #[test]
    fn database_and_redis_urls_are_checked() {
        let c =
            load("database_url = \"postgres://u@db/deskgate\"\nredis_url = \"redis://r:6379/\"\n")
                .unwrap();
        assert!(c.database.is_postgres());
        assert!(c.redis_url.is_some());
        let err = load("database_url = \"mysql://db/x\"\n").unwrap_err();
        assert!(err.contains("database_url"), "{err}");
        let err = load("redis_url = \"http://r\"\n").unwrap_err();
        assert!(err.contains("redis_url"), "{err}");
        let err =
            load("database_url = \"postgres://a\"\ndatabase_url_file = \"/x\"\n").unwrap_err();
        assert!(err.contains("not both"), "{err}");
        assert!(
            !load("").unwrap().database.is_postgres(),
            "SQLite by default"
        );
    }
}
