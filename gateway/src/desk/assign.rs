//! Auto-assignment (`--auto-assign`): queued tickets go round-robin to online agents with free
//! capacity. One task does it, woken whenever a ticket is queued or an agent frees up, so two
//! wake-ups never race each other; the store's claim keeps it correct even so.
//!
//! With Redis the agents are those of every node, and every node runs its assigner: the
//! store's claim checks the agent's capacity and the ticket's state inside one transaction
//! holding both (PostgreSQL's advisory locks on the agent and the ticket), so two nodes
//! picking the same agent or ticket at once never exceed a capacity or assign a ticket twice;
//! the loser moves on. Since another node's agent coming online or freeing up does not wake
//! this node, a shared assigner also looks at the queue every heartbeat of the presence.

use super::Desk;
use crate::ids::UserId;
use crate::store::StoreError;
use std::collections::HashSet;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Queued tickets looked at per pass.
const BATCH: i64 = 200;

pub fn spawn_assigner(desk: Arc<Desk>, shutdown: CancellationToken) {
    if !desk.config.auto_assign {
        return;
    }
    tokio::spawn(async move {
        let mut cursor = 0usize;
        // Only with shared presence: a single node is woken by every change that matters.
        let every = desk.hub.presence.heartbeat_every();
        loop {
            let tick = async {
                match every {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = desk.assign_kick.notified() => {}
                _ = tick => {}
            }
            if let Err(e) = assign_queued(&desk, &mut cursor).await {
                tracing::warn!(error = %e, "auto-assignment pass failed");
            }
        }
    });
}

async fn assign_queued(desk: &Desk, cursor: &mut usize) -> Result<(), StoreError> {
    loop {
        let agents: Vec<UserId> = desk
            .hub
            .online_agents()
            .await
            .into_iter()
            .map(|a| a.id)
            .collect();
        if agents.is_empty() {
            return Ok(());
        }
        let queue = desk.store.queue(BATCH).await?;
        if queue.is_empty() {
            return Ok(());
        }
        let mut full: HashSet<UserId> = HashSet::new();
        let mut assigned_any = false;
        for ticket in &queue {
            for i in 0..agents.len() {
                let agent = agents[(*cursor + i) % agents.len()];
                if full.contains(&agent) {
                    continue;
                }
                match desk.store.claim(ticket.id, agent, desk.clock.now()).await {
                    Ok(tr) => {
                        *cursor = (*cursor + i + 1) % agents.len();
                        desk.after_assignment(agent, &tr).await;
                        assigned_any = true;
                        break;
                    }
                    Err(StoreError::Capacity | StoreError::Forbidden | StoreError::NotFound) => {
                        full.insert(agent);
                    }
                    // Someone claimed it by hand meanwhile.
                    Err(StoreError::Conflict(_)) => break,
                    Err(e) => return Err(e),
                }
            }
            if full.len() == agents.len() {
                return Ok(());
            }
        }
        if !assigned_any || (queue.len() as i64) < BATCH {
            return Ok(());
        }
    }
}
