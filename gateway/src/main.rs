//! The `deskgate` command: parses config, sets up logging, binds, and runs.

use anyhow::Context;
use clap::{Parser, Subcommand};
use deskgate::auth::password;
use deskgate::clock::{Clock, SystemClock};
use deskgate::config::{Config, LogFormat, ServeArgs};
use deskgate::store::{NewUser, Role, Store};
use deskgate::App;
use secrecy::{ExposeSecret, SecretString};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Parser)]
#[command(
    name = "deskgate",
    version,
    about = "Customer-support gateway: chats become tickets in a live agent queue"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up; the size of the `serve` flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the gateway. With no flags: 127.0.0.1:8080, data in ./deskgate-data.
    Serve(ServeArgs),
    /// Manage staff accounts in a data dir (works while the gateway runs).
    #[command(subcommand)]
    User(UserCommand),
    /// Check or export the tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The vault's keyring: status, rotate, rewrap, retire (works while the gateway runs).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Sealed files: open an encrypted export or an outbox mail with the keyring.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Screen messages for payment card numbers: JSON lines on stdin
    /// ({"text": "...", "conversation": "optional id"}), one verdict per line on stdout
    /// ({"blocked": bool, "findings": [{"brand", "start", "end", "masked"}]}).
    Scan,
}

#[derive(clap::Args)]
struct DataArgs {
    /// TOML config file (the same one `serve` reads).
    #[arg(long, env = "DESKGATE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory [default: ./deskgate-data]
    #[arg(long, env = "DESKGATE_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// PostgreSQL database the gateway uses, if not SQLite under the data dir (the same as `serve`)
    #[arg(
        long,
        env = "DESKGATE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// File holding the database URL
    #[arg(long, env = "DESKGATE_DATABASE_URL_FILE", value_name = "FILE")]
    database_url_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a staff account. Without --password-stdin a random password is printed once.
    Add {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        username: String,
        /// Display name [default: the username]
        #[arg(long)]
        name: Option<String>,
        /// agent, lead, supervisor, approver or admin
        #[arg(long, default_value = "agent", value_parser = parse_role)]
        role: Role,
        /// Concurrent chats [default: the configured default capacity]
        #[arg(long)]
        capacity: Option<u32>,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List staff accounts.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every entry's hash chain and every signed checkpoint; exits non-zero naming the
    /// first entry that was edited, deleted, reordered or inserted.
    Verify {
        #[command(flatten)]
        data: DataArgs,
        /// Public checkpoint key (64 hex digits) [default: the public half of the configured
        /// checkpoint key]
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
        /// Checkpoint key file whose public half to check with [default: --audit-key-file or
        /// <data>/keys/audit-checkpoint.key]
        #[arg(long, env = "DESKGATE_AUDIT_KEY_FILE", value_name = "FILE")]
        key: Option<PathBuf>,
        /// The checkpoint log to cross-check the database with [default: --audit-checkpoint-log,
        /// or audit-checkpoints.jsonl beside the checkpoint key]
        #[arg(long, env = "DESKGATE_AUDIT_CHECKPOINT_LOG", value_name = "FILE")]
        checkpoint_log: Option<PathBuf>,
    },
    /// Write the log as JSON lines on standard output (for a SIEM); the export is itself
    /// recorded in the log.
    Export {
        #[command(flatten)]
        data: DataArgs,
        /// Only entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Write the export to this new file, sealed with the vault's streaming encryption
        /// (read it with `deskgate vault open`), instead of in clear on standard output.
        #[arg(long, value_name = "FILE")]
        encrypt_to: Option<PathBuf>,
        /// Keyring file [default: <data>/keyring.json]
        #[arg(long, env = "DESKGATE_KEYRING_FILE", value_name = "FILE")]
        keyring_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum VaultCommand {
    /// Write the plaintext of a sealed file (an export made with `audit export --encrypt-to`,
    /// a code email in the outbox) on standard output.
    Open {
        #[command(flatten)]
        args: KeyringArgs,
        /// The sealed file.
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct KeyringArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Keyring file [default: <data>/keyring.json]
    #[arg(long, env = "DESKGATE_KEYRING_FILE", value_name = "FILE")]
    keyring_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Keyring versions, which is current, and how many data keys each wraps.
    Status(KeyringArgs),
    /// Add a keyring version for new data keys. A running gateway notices the new keyring
    /// before it wraps its next data key.
    Rotate(KeyringArgs),
    /// Re-wrap every data key to the newest version; the sealed data is not touched.
    Rewrap(KeyringArgs),
    /// Delete a keyring version; refused while any data key is wrapped by it, and for two
    /// minutes after a rotation (a running gateway may not have read the new version yet).
    Retire {
        #[command(flatten)]
        args: KeyringArgs,
        #[arg(long)]
        version: u32,
        /// Retire even though the newest version is younger than two minutes (no gateway runs).
        #[arg(long)]
        force: bool,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(&args)?;
            init_tracing(&config);
            runtime.block_on(serve(config))
        }
        Command::User(cmd) => runtime.block_on(user(cmd)),
        Command::Audit(cmd) => runtime.block_on(audit(cmd)),
        Command::Keys(cmd) => runtime.block_on(keys(cmd)),
        Command::Vault(cmd) => vault(cmd),
        Command::Scan => {
            let stdin = std::io::stdin().lock();
            let stdout = std::io::BufWriter::new(std::io::stdout().lock());
            deskgate::screen::cli::run(stdin, stdout).context("scan failed")
        }
    }
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // Whatever the filter says, traffic printed verbatim never reaches the log.
    let never = deskgate::logging::layer();
    match config.log_format {
        LogFormat::Json => builder.json().finish().with(never).init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .finish()
            .with(never)
            .init(),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let app = App::build(config, clock).await?;
    // Signals are caught before anything is announced, so a supervisor's SIGTERM right after
    // start-up still shuts down cleanly.
    let shutdown = app.shutdown.clone();
    let signals = signals()?;
    tokio::spawn(async move {
        signals.await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    let bootstrap = deskgate::bootstrap::prepare(app.store.as_ref()).await?;
    print_banner(&app.config, bound, bootstrap.as_ref());
    deskgate::run(listener, app).await?;
    tracing::info!("stopped");
    Ok(())
}

fn print_banner(config: &Config, bound: std::net::SocketAddr, bootstrap: Option<&SecretString>) {
    let base = config.base_url(bound);
    let ws = base.replacen("http", "ws", 1);
    println!("deskgate is listening on {base}");
    println!("  data:            {}", config.data.display());
    println!("  demo page:       {base}/demo   (the widget: {base}/widget.js)");
    println!("  agent console:   {base}/console   supervisor console: {base}/supervisor");
    println!("  REST API:        {base}/api/openapi.json");
    println!("  customer socket: {ws}/ws/customer   staff socket: {ws}/ws/agent");
    println!("  health:          {base}/healthz  {base}/readyz  metrics: {base}/metrics");
    if config.sites.is_empty() {
        println!(
            "  site key:        demo (identity secret in {})",
            config.data.join("sites/demo.identity-secret").display()
        );
    }
    if let Some(secret) = bootstrap {
        println!();
        println!("No staff account exists yet. Create the first admin with this one-time secret");
        println!("(it is shown once; restarting issues a new one):");
        println!();
        println!(
            "  curl -X POST {base}/api/bootstrap -H 'content-type: application/json' \\\n    -d '{{\"secret\":\"{}\",\"username\":\"admin\",\"password\":\"<choose one>\"}}'",
            secret.expose_secret()
        );
        println!();
        println!("or, from a shell on this machine: deskgate user add --data {} --username admin --role admin", config.data.display());
        println!();
        println!(
            "Admins, supervisors and approvers enrol a second factor (TOTP) at their first login:"
        );
        println!("POST /api/session answers with mfa_enrolment_required, then POST /api/me/mfa/totp (docs/verification.md).");
    }
}

/// Registers SIGINT and SIGTERM now; the returned future resolves on the first of them.
fn signals() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// The configuration a command works with: the config file and data dir it was given, and
/// the key and log locations from the same environment variables `serve` reads.
fn command_config(data: &DataArgs, keyring_file: Option<PathBuf>) -> anyhow::Result<Config> {
    let env_path = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let args = ServeArgs {
        config: data.config.clone(),
        data: data.data.clone(),
        database_url: data.database_url.clone(),
        database_url_file: data.database_url_file.clone(),
        keyring_file: keyring_file.or_else(|| env_path("DESKGATE_KEYRING_FILE")),
        audit_key_file: env_path("DESKGATE_AUDIT_KEY_FILE"),
        audit_checkpoint_log: env_path("DESKGATE_AUDIT_CHECKPOINT_LOG"),
        audit_checkpoint_copy: env_path("DESKGATE_AUDIT_CHECKPOINT_COPY"),
        ..Default::default()
    };
    Ok(Config::load(&args)?)
}

/// The store of a data dir for a command. `create_keyring`: a data dir without a keyring
/// gets one (`user add` before the first `serve`); otherwise the keyring must exist.
async fn open_store(
    config: &Config,
    create_keyring: bool,
) -> anyhow::Result<(
    Arc<deskgate::vault::Vault>,
    Arc<dyn deskgate::store::KeyAdmin>,
)> {
    use deskgate::vault::Vault;
    let keyring = config.keyring_file.as_deref();
    // The store opens sealed values, so it needs the configured keyring, not a new default.
    let vault = if create_keyring {
        Vault::open(&config.data, keyring, SystemClock.now())?
    } else {
        Vault::open_existing(&config.data, keyring)?
    };
    let vault = Arc::new(vault);
    let store = deskgate::store::open(config, vault.clone()).await?;
    Ok((vault, store))
}

/// Records an operator's action from the command line and signs a checkpoint over it when
/// the checkpoint key is readable here; otherwise the gateway signs it at its next checkpoint.
async fn record_operator(
    config: &Config,
    store: Arc<dyn Store>,
    tool: &str,
    event: deskgate::audit::Event,
) -> anyhow::Result<()> {
    use deskgate::audit::{self as log, Auditor, Context};
    let key = recorder::audit::CheckpointKey::load(&log::key_path(config)).ok();
    let signs = key.is_some();
    let auditor = Auditor::new(
        store,
        Arc::new(SystemClock),
        key,
        config.audit.checkpoint_every,
        log::checkpoint_logs(config),
    );
    let ctx = Context {
        role: Some("operator".into()),
        user_agent: Some(tool.to_string()),
        ..Default::default()
    };
    let record = auditor.record(&ctx, event).await?;
    if signs {
        auditor.checkpoint().await?;
    } else {
        eprintln!(
            "note: audit entry {} is not signed here (no readable checkpoint key); the gateway signs it at its next checkpoint",
            record.seq
        );
    }
    Ok(())
}

async fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    use deskgate::vault::keys;
    let args = match &cmd {
        KeysCommand::Status(a) | KeysCommand::Rotate(a) | KeysCommand::Rewrap(a) => a,
        KeysCommand::Retire { args, .. } => args,
    };
    let config = command_config(&args.data, args.keyring_file.clone())?;
    let now = SystemClock.now();
    let (vault, store) = open_store(&config, false).await?;
    let done = match cmd {
        KeysCommand::Status(_) => {
            print!("{}", keys::status(store.as_ref(), &vault).await?);
            None
        }
        KeysCommand::Rotate(_) => {
            let v = keys::rotate(&vault, now)?;
            println!("keyring version {v} is now current; new data keys are wrapped by it");
            println!("run `deskgate keys rewrap` to move existing data keys to it");
            Some(format!("rotate: {v} is current"))
        }
        KeysCommand::Rewrap(_) => {
            let moved = keys::rewrap(store.as_ref(), &vault).await?;
            let current = vault.keyring().current();
            println!("re-wrapped {moved} data key(s) to keyring version {current}");
            Some(format!("rewrap: {moved} data keys to {current}"))
        }
        KeysCommand::Retire { version, force, .. } => {
            keys::retire(
                store.as_ref(),
                &vault,
                recorder::KeyVersion(version),
                now,
                force,
            )
            .await?;
            println!("keyring version v{version} retired");
            Some(format!("retire: v{version}"))
        }
    };
    // Every change to the keyring leaves an audit entry, made by the operator at the console.
    if let Some(detail) = done {
        let ev =
            deskgate::audit::Event::allowed(deskgate::audit::Action::KeysRotated).detail(detail);
        record_operator(&config, store.into_store(), "deskgate keys", ev).await?;
    }
    Ok(())
}

async fn user(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            data,
            username,
            name,
            role,
            capacity,
            password_stdin,
        } => {
            deskgate::api::users::valid_username(&username).map_err(|_| {
                anyhow::anyhow!("username must be 1-64 letters, digits, '.', '_', '-' or '@'")
            })?;
            let config = command_config(&data, None)?;
            let (_, store) = open_store(&config, true).await?;
            let (secret, generated) = if password_stdin {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                (
                    SecretString::from(s.trim_end_matches(['\r', '\n']).to_string()),
                    false,
                )
            } else {
                (password::generate(), true)
            };
            let hash = password::hash(&secret)?;
            let user = store
                .create_user(
                    NewUser {
                        name: name.unwrap_or_else(|| username.clone()),
                        username,
                        role,
                        password_hash: hash,
                        capacity: capacity.unwrap_or(config.desk.default_capacity),
                    },
                    SystemClock.now(),
                )
                .await?;
            println!("created {} ({}, id {})", user.username, user.role, user.id);
            if generated {
                println!("password (shown once): {}", secret.expose_secret());
            }
            Ok(())
        }
        UserCommand::List { data } => {
            let config = command_config(&data, None)?;
            let (_, store) = open_store(&config, true).await?;
            for u in store.users().await? {
                println!(
                    "{:>5}  {:<24} {:<10} capacity {:<4} {}",
                    u.id,
                    u.username,
                    u.role,
                    u.capacity,
                    if u.active { "active" } else { "disabled" }
                );
            }
            Ok(())
        }
    }
}

async fn audit(cmd: AuditCommand) -> anyhow::Result<()> {
    use deskgate::audit as log;
    match cmd {
        AuditCommand::Verify {
            data,
            public_key,
            key,
            checkpoint_log,
        } => {
            let config = command_config(&data, None)?;
            // Read-only: no migration, no keyring, nothing created.
            let reader: Box<dyn deskgate::audit::AuditSource> = match &config.database {
                deskgate::config::Database::Sqlite => {
                    Box::new(deskgate::store::sqlite::AuditReader::open(&config.data).await?)
                }
                deskgate::config::Database::Postgres(url) => Box::new(
                    deskgate::store::postgres::PgAuditReader::connect(url.expose_secret()).await?,
                ),
            };
            // The checkpoint log lies beside the checkpoint key unless configured elsewhere.
            let log_path = checkpoint_log
                .or_else(|| config.audit.log_file.clone())
                .unwrap_or_else(|| {
                    key.clone()
                        .unwrap_or_else(|| log::key_path(&config))
                        .with_file_name(log::CHECKPOINT_LOG_NAME)
                });
            let verifying = match (public_key, key) {
                (Some(path), _) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    recorder::audit::parse_verifying_key(&text).with_context(|| {
                        format!("{} is not an Ed25519 public key in hex", path.display())
                    })?
                }
                (None, key) => {
                    let path = key.unwrap_or_else(|| log::key_path(&config));
                    recorder::audit::CheckpointKey::load(&path)?.verifying_key()
                }
            };
            let checkpoint_log = recorder::audit::CheckpointLog::new(log_path);
            let logged = checkpoint_log.read()?;
            let max_age = i64::try_from(log::unsigned_max_age().as_millis()).unwrap_or(i64::MAX);
            let options = log::VerifyOptions {
                logged,
                checkpoints: None,
                freshness: Some(recorder::audit::Freshness {
                    now: SystemClock.now().0,
                    max_age_ms: max_age,
                    max_entries: i64::try_from(config.audit.checkpoint_every).unwrap_or(i64::MAX),
                }),
            };
            match log::verify_store(reader.as_ref(), &verifying, options).await? {
                Ok(v) => {
                    println!(
                        "audit log ok: {} entries, {} signed checkpoints (key {}), cross-checked with {}",
                        v.entries,
                        v.checkpoints,
                        recorder::audit::key_id(&verifying),
                        checkpoint_log.path().display()
                    );
                    match v.last_checkpoint {
                        Some(last) if last < v.entries => println!(
                            "entries {}-{} are after the last checkpoint: chained, not yet signed",
                            last + 1,
                            v.entries
                        ),
                        None if v.entries > 0 => {
                            println!("no signed checkpoint yet: entries are chained, not signed")
                        }
                        _ => {}
                    }
                    Ok(())
                }
                Err(broken) => anyhow::bail!("audit log broken: {broken}"),
            }
        }
        AuditCommand::Export {
            data,
            after,
            encrypt_to,
            keyring_file,
        } => {
            let config = command_config(&data, keyring_file)?;
            let (vault, store) = open_store(&config, false).await?;
            let store: Arc<dyn Store> = store.into_store();
            let (range, sealed) = match &encrypt_to {
                None => {
                    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                    (log::export(store.as_ref(), after, &mut out).await?, None)
                }
                Some(path) => {
                    let (range, owner) = export_sealed(store.as_ref(), &vault, after, path).await?;
                    (range, Some(owner))
                }
            };
            let mut detail = match range {
                Some((first, last)) => format!("entries {first}-{last}"),
                None => "no entries".to_string(),
            };
            if let Some(owner) = sealed {
                detail.push_str(&format!("; sealed as {owner}"));
            }
            let ev = log::Event::allowed(log::Action::AuditExported).detail(detail);
            record_operator(&config, store, "deskgate audit export", ev).await
        }
    }
}

/// Writes the export into a new file (mode 0600) as a sealed file under a fresh data key;
/// returns the range written and the file's owner name (in the audit entry).
async fn export_sealed(
    store: &dyn Store,
    vault: &deskgate::vault::Vault,
    after: i64,
    path: &std::path::Path,
) -> anyhow::Result<(Option<(i64, i64)>, String)> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let file = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut id = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    let owner = recorder::Owner::new("export", hex::encode(id));
    let mut sealed = recorder::file::SealedFileWriter::create(
        &vault.keyring(),
        recorder::RecordKind::EXPORT,
        &owner,
        std::io::BufWriter::new(file),
    )?;
    let range = deskgate::audit::export(store, after, &mut sealed).await?;
    let file = sealed.finish()?;
    file.into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error()))?
        .sync_all()?;
    Ok((range, owner.to_string()))
}

fn vault(cmd: VaultCommand) -> anyhow::Result<()> {
    match cmd {
        VaultCommand::Open { args, file } => {
            let config = command_config(&args.data, args.keyring_file)?;
            let vault = deskgate::vault::Vault::open_existing(
                &config.data,
                config.keyring_file.as_deref(),
            )?;
            // Each segment is printed once it is authenticated; a file cut short or edited
            // fails at that segment, with a non-zero exit.
            let out = std::io::BufWriter::new(std::io::stdout().lock());
            deskgate::vault::outbox::open_file(&vault, &file, out)
                .with_context(|| format!("cannot open {}", file.display()))?;
            Ok(())
        }
    }
}
