//! Slow consumers for the `chat` scenario: extra customer tabs that say hello and then never
//! read again. Their conversation's messages are synced to them, so the gateway's bounded
//! per-connection queue fills and the gateway must close them (4009) on its own, while every
//! other connection goes on as before.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::Ctx;
use crate::api::Token;
use crate::ws::{self, Role};

/// A receive buffer this small fills after a handful of frames.
const RECV_BUFFER: u32 = 4096;

/// What became of one stalled tab, learnt when the run ends and it finally reads.
pub enum Outcome {
    /// The gateway closed it with this code.
    Closed(String),
    /// Still open at the end: the gateway never had to shed it.
    Open,
    /// It could not be opened.
    Failed,
}

/// Opens one stalled tab per token; each holds its socket unread until `stop`.
pub async fn open(
    ctx: &Arc<Ctx>,
    tokens: Vec<Token>,
    stop: watch::Receiver<bool>,
) -> JoinSet<Outcome> {
    let mut tabs = JoinSet::new();
    if tokens.is_empty() {
        return tabs;
    }
    for token in tokens {
        let (ctx, mut stop) = (ctx.clone(), stop.clone());
        tabs.spawn(async move {
            let attempt = async {
                let mut socket = ws::open_with(
                    ctx.targets.next(),
                    &ctx.sources,
                    Role::Customer,
                    Some(RECV_BUFFER),
                )
                .await?;
                ws::hello(&mut socket, token.expose(), ctx.hello_timeout).await?;
                Ok::<_, ws::ConnectError>(socket)
            };
            let mut socket = match attempt.await {
                Ok(socket) => socket,
                Err(e) => {
                    ctx.errors.add(format!("stalled tab: {}", e.label()));
                    return Outcome::Failed;
                }
            };
            super::stopped(&mut stop).await;
            // Now read what piled up, looking for the gateway's close.
            let read_all = async {
                while let Some(frame) = socket.next().await {
                    match frame {
                        Ok(Message::Close(frame)) => {
                            return Outcome::Closed(ws::close_label(frame.as_ref()))
                        }
                        Ok(_) => continue,
                        Err(_) => return Outcome::Closed("reset".into()),
                    }
                }
                Outcome::Closed("ended without close".into())
            };
            match tokio::time::timeout(Duration::from_secs(2), read_all).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome::Open,
            }
        });
    }
    eprintln!("stalled tabs: {} opened; they will not read", tabs.len());
    tabs
}

/// Collects the tabs' outcomes into one note.
pub async fn tally(mut tabs: JoinSet<Outcome>, notes: &mut Vec<String>) {
    if tabs.is_empty() {
        return;
    }
    let mut closed: BTreeMap<String, u64> = BTreeMap::new();
    let (mut open, mut failed) = (0, 0);
    while let Some(done) = tabs.join_next().await {
        match done {
            Ok(Outcome::Closed(how)) => *closed.entry(how).or_default() += 1,
            Ok(Outcome::Open) => open += 1,
            Ok(Outcome::Failed) | Err(_) => failed += 1,
        }
    }
    let closed: Vec<String> = closed.iter().map(|(k, v)| format!("{v} {k}")).collect();
    notes.push(format!(
        "stalled tabs (never read): closed by the gateway: {}; still open at the end: {open}; \
         could not open: {failed}",
        if closed.is_empty() {
            "none".to_owned()
        } else {
            closed.join(", ")
        }
    ));
}
