//! The shared state of a running gateway, built once at start-up and cloned into every
//! request handler and connection task.

use crate::audit::Auditor;
use crate::bus::memory::MemoryBus;
use crate::bus::redis::RedisBus;
use crate::bus::Bus;
use crate::clock::Clock;
use crate::config::Config;
use crate::desk::Desk;
use crate::hub::{Hub, Registry};
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::sites::Sites;
use crate::stepup::StepUp;
use crate::store::Store;
use crate::vault::Vault;
use secrecy::ExposeSecret;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub desk: Arc<Desk>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub sites: Arc<Sites>,
    /// Step-up verification and staff second factors.
    pub stepup: Arc<StepUp>,
    /// Appends to the audit log and signs its checkpoints; called through [`App::audit`].
    pub auditor: Arc<Auditor>,
    /// Keys and sealing; the store holds the same one.
    pub vault: Arc<Vault>,
    /// Agents' replies emailed to customers with no tab open ([`crate::notify`]).
    pub offline_replies: Arc<crate::notify::OfflineReplies>,
    /// The live calls of this node ([`crate::voice`]).
    pub calls: Arc<crate::voice::Calls>,
    /// Cancelled when the gateway shuts down; every connection task watches it.
    pub shutdown: CancellationToken,
    /// The connection tasks, so shutdown can wait for them to close cleanly.
    pub tracker: TaskTracker,
    /// Rate limits and per-address connection counts.
    pub limiter: Arc<crate::limits::Limiter>,
    /// The anomaly rules, fed every audit entry.
    pub anomaly: Arc<crate::anomaly::Detector>,
    /// Staff notifications (the live `security_alert` frames).
    pub hub: Hub,
    /// Outgoing HTTP (the alert webhook).
    pub http: reqwest::Client,
    /// How this node reaches the other nodes, to relay calls.
    pub nodes: Arc<crate::voice::relay::Nodes>,
}

impl App {
    /// Opens the configured store (SQLite under the data dir, or PostgreSQL) and wires the bus.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        crate::vault::warn_if_keys_in_data_dir(&config);
        let vault = Arc::new(Vault::open(
            &config.data,
            config.keyring_file.as_deref(),
            clock.now(),
        )?);
        let store = crate::store::open(&config, vault.clone())
            .await?
            .into_store();
        let registry = Arc::new(Registry::default());
        let (bus, redis): (Arc<dyn Bus>, _) = match &config.redis_url {
            Some(url) => {
                let bus_urls: Vec<&str> = match config.bus_redis_urls.as_slice() {
                    [] => vec![url.expose_secret()],
                    urls => urls.iter().map(|u| u.expose_secret()).collect(),
                };
                (
                    Arc::new(RedisBus::connect(&bus_urls, registry.clone()).await?),
                    Some(redis_state(url.expose_secret()).await?),
                )
            }
            None => (Arc::new(MemoryBus::new(registry.clone())), None),
        };
        let app = Self::assemble(config, clock, store, vault, registry, bus, redis)?;
        app.stepup.reseal_legacy_seeds().await?;
        Ok(app)
    }

    /// With a store built elsewhere; the vault is opened from the config (a store that seals
    /// should be given the same one: [`App::with_vault`]).
    pub fn with_store(
        config: Config,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
    ) -> anyhow::Result<App> {
        let vault = Arc::new(Vault::open(
            &config.data,
            config.keyring_file.as_deref(),
            clock.now(),
        )?);
        Self::with_vault(config, clock, store, vault)
    }

    /// With a store built elsewhere and the embedded bus.
    pub fn with_vault(
        config: Config,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
    ) -> anyhow::Result<App> {
        let registry = Arc::new(Registry::default());
        let bus = Arc::new(MemoryBus::new(registry.clone()));
        Self::assemble(config, clock, store, vault, registry, bus, None)
    }

    fn assemble(
        config: Config,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        registry: Arc<Registry>,
        bus: Arc<dyn Bus>,
        redis: Option<redis::aio::ConnectionManager>,
    ) -> anyhow::Result<App> {
        let sites = Arc::new(Sites::load(&config)?);
        let metrics = Arc::new(Metrics::default());
        let presence = Arc::new(match &redis {
            Some(conn) => Presence::redis(conn.clone(), config.presence_ttl),
            None => Presence::local(),
        });
        let hub = Hub::with_presence(registry, bus, presence.clone());
        let auditor = Arc::new(Auditor::configured(&config, store.clone(), clock.clone())?);
        // With Redis, challenges and the daily counts of wrong codes are decided there.
        let shared_verification = redis.clone().map(|conn| {
            Arc::new(crate::stepup::redis::RedisVerification::new(
                conn,
                store.clone(),
            )) as Arc<dyn verify::VerificationStore>
        });
        let stepup = Arc::new(StepUp::new(
            &config,
            store.clone(),
            shared_verification,
            hub.clone(),
            clock.clone(),
            auditor.clone(),
            vault.clone(),
        )?);
        let desk = Arc::new(Desk::new(
            store.clone(),
            hub.clone(),
            clock.clone(),
            config.desk.clone(),
            metrics.clone(),
            auditor.clone(),
        ));
        let calls = Arc::new(crate::voice::Calls::new(redis.clone()));
        let limiter = Arc::new(match redis {
            Some(conn) => crate::limits::Limiter::with_redis(config.limits.clone(), conn),
            None => crate::limits::Limiter::new(config.limits.clone()),
        });
        let anomaly = Arc::new(crate::anomaly::Detector::new(config.alerts.clone()));
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let nodes = Arc::new(crate::voice::relay::Nodes::new(config.node_ca.as_deref())?);
        let app = App {
            config: Arc::new(config),
            store,
            desk,
            clock,
            metrics,
            sites,
            stepup,
            auditor,
            vault,
            offline_replies: Default::default(),
            calls,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            limiter,
            anomaly,
            hub,
            http,
            nodes,
        };
        crate::alerts::spawn(&app);
        presence.spawn_heartbeat(app.shutdown.clone());
        Ok(app)
    }
}

/// The connection for presence and shared rate limits (the bus keeps its own, so a slow
/// publish never delays a limit check). It reconnects by itself; calls time out on their own.
async fn redis_state(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(std::time::Duration::from_secs(1))
        .set_response_timeout(std::time::Duration::from_secs(1))
        .set_number_of_retries(1);
    Ok(redis::aio::ConnectionManager::new_with_config(client, config).await?)
}
