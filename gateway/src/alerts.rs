//! Raising anomaly alerts: every audit entry goes (without waiting) to a task that runs the
//! [`anomaly`](crate::anomaly) rules; each alert they raise is written to the audit log, sent
//! to the supervisors and admins online as a `security_alert` frame, and POSTed to the
//! configured webhook.

use crate::anomaly::{self, Raised};
use crate::app::App;
use crate::audit::{Action, Context, Event, Outcome};
use crate::bus::{Audience, Topic};
use crate::stepup::security::{receives_alerts, Alert};

/// Audit entries waiting for the rules before new ones are dropped (and a warning logged).
const QUEUE: usize = 4096;

pub fn spawn(app: &App) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(QUEUE);
    app.auditor.watch(tx);
    let app = app.clone();
    runtime.spawn(async move {
        loop {
            let record = tokio::select! {
                _ = app.shutdown.cancelled() => return,
                r = rx.recv() => match r { Some(r) => r, None => return },
            };
            for raised in app.anomaly.observe(&record) {
                raise(&app, raised).await;
            }
        }
    });
}

async fn raise(app: &App, r: Raised) {
    let at = app.clock.now();
    tracing::warn!(
        target: "deskgate::security",
        rule = r.rule,
        level = r.level.as_str(),
        actor = r.actor,
        customer = r.customer.map(|c| c.0),
        ticket = r.ticket.map(|t| t.0),
        "anomaly alert: {}",
        r.message
    );
    let mut ev = Event::new(Action::AnomalyAlert, Outcome::Allowed).detail(anomaly::detail(&r));
    if let Some(c) = r.customer {
        ev = ev.customer(c);
    }
    ev = match (r.actor, r.ticket) {
        (Some(u), _) => ev.object("user", u),
        (None, Some(t)) => ev.object("ticket", t.0),
        (None, None) => ev,
    };
    let seq = match app.audit(&Context::system(), ev).await {
        Ok(rec) => Some(rec.seq),
        Err(e) => {
            tracing::error!(target: "deskgate::security", error = %e, "anomaly alert not audited");
            None
        }
    };
    let alert = Alert {
        kind: r.rule.to_string(),
        level: r.level,
        actor: r.actor,
        ticket: r.ticket,
        customer: r.customer,
        at,
        message: r.message.clone(),
    };
    let frame = alert.frame();
    match app.store.users().await {
        Ok(users) => {
            for u in users.iter().filter(|u| u.active && receives_alerts(u.role)) {
                let event =
                    crate::bus::Event::new(Topic::User(u.id), Audience::Staff, frame.clone());
                if let Err(e) = app.hub.publish(event).await {
                    tracing::warn!(error = %e, "publish failed");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list supervisors for an anomaly alert"),
    }
    if let Some(hook) = &app.anomaly.config().webhook {
        let body = anomaly::WebhookBody {
            kind: r.rule,
            level: r.level,
            actor: r.actor,
            customer: r.customer,
            ticket: r.ticket,
            at,
            message: &r.message,
            audit_seq: seq,
        };
        match serde_json::to_vec(&body) {
            Ok(body) => anomaly::post(app.http.clone(), hook.clone(), at.0 / 1000, body),
            Err(e) => tracing::error!(error = %e, "cannot encode the alert webhook body"),
        }
    }
}
