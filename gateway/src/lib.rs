//! deskgate: a customer-support gateway. Customers chat through a widget, every conversation
//! becomes a ticket in a live queue, agents work it.
//!
//! Map of the crate, following one chat message:
//! - [`ws`]: WebSocket sessions (`/ws/customer`, `/ws/agent`); [`protocol`] is their wire format.
//! - [`desk`]: what can happen to a ticket (send, claim, transfer, resolve, notes), for the
//!   sessions and the REST API alike; passes every message through the card-number [`screen`],
//!   commits to the [`store`], then publishes on the [`hub`].
//! - [`store`]: the durable store seam (SQLite embedded); [`bus`]: the live-event seam
//!   (in-process embedded); [`hub`]: fan-out to this node's connections; [`presence`]: which
//!   agents are online (this node's, or the cluster's through Redis).
//! - [`api`]: the REST API; [`auth`]: passwords, tokens, signed identities; [`sites`]:
//!   embedding sites; [`bootstrap`]: the first admin.
//! - [`stepup`]: step-up verification of customers before sensitive actions, and the staff
//!   second factor (TOTP, recovery codes), on the `verify` crate.
//! - [`attachment`]: which files are accepted (type allow-list checked against the content,
//!   size, a clean name); the store seals them as STREAMs under the conversation's key.
//! - [`notify`]: an agent's reply emailed to a customer who has no tab open.
//! - [`web`]: the embedded widget, demo page and consoles (built from `web-widget/`).
//! - [`voice`]: calls over WebSocket (`/media/twilio`, `/media/pcm`), relayed live between
//!   caller and agent and recorded into the vault, with the PCI pause.
//! - [`audit`]: the one door to the tamper-evident audit log ([`App::audit`]).
//! - [`vault`]: keys and sealing of what customers typed (the `recorder` crate does the
//!   cryptography); the store seals on write and opens on read.
//! - [`tls`]: TLS with certificate reload; [`proxy`]: the client address behind trusted
//!   proxies; [`limits`]: rate limits and connection caps; [`headers`]: security headers.
//! - [`anomaly`]: the anomaly rules; [`alerts`]: raising their alerts (audit, console, webhook).
//! - [`app`]: shared state; [`server`]: routes and `run`; [`config`]; [`clock`]; [`metrics`];
//!   [`logging`]: what never reaches the log, whatever the filter.

pub mod alerts;
pub mod anomaly;
pub mod api;
pub mod app;
pub mod attachment;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod bus;
pub mod clock;
pub mod config;
pub mod desk;
pub mod headers;
pub mod hub;
pub mod ids;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod origin;
pub mod presence;
pub mod protocol;
pub mod proxy;
pub mod screen;
pub mod server;
pub mod sites;
pub mod stepup;
pub mod store;
pub mod tls;
pub mod vault;
pub mod voice;
pub mod web;
pub mod ws;

pub use app::App;
pub use config::Config;
pub use server::run;
