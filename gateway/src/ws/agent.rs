//! Frames of a staff connection (`/ws/agent`): the live queue, claiming, replying, notes,
//! transfers and resolution. Every frame is checked against the permission matrix
//! ([`crate::auth::permission`]) for the connection's role, then authorised against the
//! ticket's current state. A change of role or a deactivation closes the connection (4003),
//! so the role checked here is always the current one.

use super::conn::{closing, Conn, Flow, Who};
use crate::audit::{Action, Event};
use crate::auth::Permission;
use crate::desk::DeskError;
use crate::ids::{ConversationId, TicketId};
use crate::limits::Rule;
use crate::protocol::{
    blocked_message, close, BlockedFinding, ClientFrame, ClientId, ErrorCode, Inbound, MessageText,
    QueueFlag, QueueOp, ResumePoint, ServerFrame,
};
use crate::store::{Author, AuthorKind, TicketFilter, TicketStatus, User};
use crate::voice::call::PauseFirst;

/// Queued tickets sent in `welcome`; the rest arrive as `queue` events or through the API.
const WELCOME_QUEUE: i64 = 200;
/// Assigned tickets sent in `welcome`; far above any sensible capacity.
const WELCOME_ASSIGNED: i64 = 1000;

fn user(conn: &Conn) -> Option<User> {
    match &conn.who {
        Who::Staff(u) => Some(u.clone()),
        Who::Customer(_) => None,
    }
}

pub(super) async fn welcome(conn: &mut Conn, resume: &[ResumePoint]) -> Flow {
    let Some(me) = user(conn) else {
        return Err(closing(close::INTERNAL, "not staff"));
    };
    let unavailable = |_| closing(close::INTERNAL, "store unavailable");
    let assigned = conn
        .app
        .store
        .tickets(TicketFilter {
            status: Some(TicketStatus::Assigned),
            agent: Some(me.id),
            customer: None,
            limit: WELCOME_ASSIGNED,
        })
        .await
        .map_err(unavailable)?;
    let queue = if me.role.can(Permission::ViewQueue) {
        conn.app
            .store
            .queue(WELCOME_QUEUE)
            .await
            .map_err(unavailable)?
    } else {
        Vec::new()
    };
    let frame = ServerFrame::WelcomeAgent {
        user: &me,
        assigned: &assigned,
        queue: &queue,
    }
    .encode();
    // One entry for what the welcome shows: the agent's tickets, resumed or followed from
    // here, and the queue.
    let shown: Vec<_> = assigned.iter().chain(queue.iter()).cloned().collect();
    let ev = crate::api::tickets::listed("welcome", &shown);
    let _ = conn.app.audit(&conn.audit_ctx(), ev).await;
    conn.send(frame).await?;
    for t in &assigned {
        match resume.iter().find(|r| r.conversation == t.conversation) {
            Some(r) => conn.follow(t.conversation, t.id, r.after, true).await?,
            None => conn.follow(t.conversation, t.id, t.last_seq, false).await?,
        }
    }
    for r in resume {
        if assigned.iter().any(|t| t.conversation == r.conversation) {
            continue;
        }
        let readable = match conn.app.store.ticket_by_conversation(r.conversation).await {
            // A closed transcript opens only through a grant, never by resuming it.
            Ok(t) if crate::desk::Desk::may_read(&me, &t) && t.status != TicketStatus::Closed => {
                Some(t)
            }
            _ => None,
        };
        match readable {
            Some(t) => {
                audit_read(conn, t.id, "resume").await;
                conn.replay(t.id, t.conversation, r.after).await?
            }
            None => {
                conn.reply_error(None, ErrorCode::NotFound, "no such conversation")
                    .await?
            }
        }
    }
    Ok(())
}

/// Sends the whole queue (`queue` `op: reset`) to a connection that missed `queue` events
/// because its queue of frames was full. The events already waiting were published before the
/// snapshot is read, so the `queue` events among them are skipped; those published after it
/// apply on top, in order.
pub(super) async fn resend_queue(conn: &mut Conn) -> Flow {
    let unavailable = |_| closing(close::INTERNAL, "store unavailable");
    conn.stale_queue_events = conn.events_waiting();
    let tickets = conn
        .app
        .store
        .queue(WELCOME_QUEUE)
        .await
        .map_err(unavailable)?;
    // One read for every ticket's flag: this runs when the store is busiest (a burst).
    let ids: Vec<TicketId> = tickets.iter().map(|t| t.id).collect();
    let mut flags: Vec<QueueFlag> = conn
        .app
        .store
        .step_up_flags(&ids)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|(ticket, phrase)| QueueFlag { ticket, phrase })
        .collect();
    // In the queue's order, as the tickets are.
    flags.sort_by_key(|f| ids.iter().position(|t| *t == f.ticket));
    let ev = crate::api::tickets::listed("queue resent", &tickets);
    let _ = conn.app.audit(&conn.audit_ctx(), ev).await;
    let frame = ServerFrame::QueueSnapshot {
        op: QueueOp::Reset,
        tickets: &tickets,
        flags: &flags,
    }
    .encode();
    conn.send(frame).await
}

/// Records that the connection's staff user reads a ticket's conversation (`how`: follow,
/// resume, sync), naming its customer.
pub(super) async fn audit_read(conn: &mut Conn, ticket: TicketId, how: &str) {
    let mut ev = Event::allowed(Action::TicketRead)
        .object("ticket", ticket.0)
        .detail(how);
    if let Ok(t) = conn.app.store.ticket(ticket).await {
        ev = ev.customer(t.customer.id);
    }
    let _ = conn.app.audit(&conn.audit_ctx(), ev).await;
}

/// The named ticket and its conversation, if this connection follows it (it is assigned to
/// the agent).
fn followed(conn: &Conn, ticket: Option<TicketId>) -> Option<(TicketId, ConversationId)> {
    let ticket = ticket?;
    conn.follows
        .iter()
        .find(|(_, f)| f.ticket == ticket)
        .map(|(c, _)| (ticket, *c))
}

/// The permission a frame needs beyond the ticket's own rules; `None` for frames every staff
/// connection may send.
fn needed(frame: &ClientFrame) -> Option<Permission> {
    match frame {
        ClientFrame::Claim { .. }
        | ClientFrame::Send { .. }
        | ClientFrame::Note { .. }
        | ClientFrame::Transfer { .. }
        | ClientFrame::Resolve { .. }
        | ClientFrame::Typing { .. }
        | ClientFrame::Read { .. }
        | ClientFrame::RequestVerification { .. }
        | ClientFrame::ResendVerification { .. } => Some(Permission::WorkTickets),
        // Which tickets one may read is decided per ticket (`Desk::may_read`); `verify` is the
        // customer's frame and is refused below whatever the role.
        ClientFrame::Sync { .. }
        | ClientFrame::Hello { .. }
        | ClientFrame::Ping
        | ClientFrame::Verify { .. } => None,
    }
}

pub(super) async fn on_frame(conn: &mut Conn, inbound: Inbound) -> Flow {
    let Some(me) = user(conn) else {
        return Err(closing(close::INTERNAL, "not staff"));
    };
    let reference = inbound.reference.as_deref();
    let desk = conn.app.desk.clone();
    if let Some(p) = needed(&inbound.frame) {
        if !me.role.can(p) {
            return conn
                .reply_error(reference, ErrorCode::Forbidden, "your role may not do this")
                .await;
        }
    }
    match inbound.frame {
        ClientFrame::Claim { ticket } => match desk.claim(&me, ticket).await {
            Ok(t) => {
                ok(conn, reference, Some(&t)).await?;
                auto_request(conn, me, &t).await
            }
            Err(e) => conn.reply_desk_error(reference, e).await,
        },
        ClientFrame::Send {
            ticket,
            client_id,
            text,
        } => {
            let Some(ticket) = ticket else {
                return conn
                    .reply_error(
                        reference,
                        ErrorCode::InvalidFrame,
                        "send: missing field `ticket`",
                    )
                    .await;
            };
            let Some((client_id, text)) = validate(conn, reference, client_id, text).await? else {
                return Ok(());
            };
            if conn
                .limited(reference, &[(Rule::MessagesPerUser, me.id.0.to_string())])
                .await?
            {
                return Ok(());
            }
            match desk
                .agent_send(&conn.audit_ctx(), &me, ticket, &client_id, &text)
                .await
            {
                Ok(sent) => {
                    if !sent.appended.duplicate && !sent.blocked() {
                        // By email to a customer with no tab open; off this connection's task,
                        // so a slow mail server never holds the agent's ack.
                        let (app, message) = (conn.app.clone(), sent.appended.message.clone());
                        let id = sent.appended.ticket;
                        tokio::spawn(async move {
                            if let Ok(t) = app.store.ticket(id).await {
                                crate::notify::agent_replied(&app, &t, &message).await;
                            }
                        });
                    }
                    conn.reply_sent(reference, client_id.as_str(), &sent).await
                }
                Err(e) => conn.reply_desk_error(reference, e).await,
            }
        }
        ClientFrame::Note {
            ticket,
            client_id,
            text,
        } => {
            let Some((client_id, text)) = validate(conn, reference, client_id, text).await? else {
                return Ok(());
            };
            if conn
                .limited(reference, &[(Rule::MessagesPerUser, me.id.0.to_string())])
                .await?
            {
                return Ok(());
            }
            match desk
                .note(&conn.audit_ctx(), &me, ticket, &client_id, &text)
                .await
            {
                Ok(_) => ok(conn, reference, None).await,
                Err(DeskError::Blocked(findings)) => {
                    let frame = ServerFrame::Blocked {
                        reference,
                        client_id: client_id.as_str(),
                        ticket,
                        conversation: None,
                        seq: None,
                        reason: "card_number",
                        findings: BlockedFinding::all(&findings),
                        message: blocked_message(&findings),
                    }
                    .encode();
                    conn.send(frame).await
                }
                Err(e) => conn.reply_desk_error(reference, e).await,
            }
        }
        ClientFrame::Transfer { ticket, to } => match desk.transfer(&me, ticket, to).await {
            Ok(t) => ok(conn, reference, Some(&t)).await,
            Err(e) => conn.reply_desk_error(reference, e).await,
        },
        ClientFrame::Resolve { ticket } => match desk.resolve(&me, ticket).await {
            Ok(t) => ok(conn, reference, Some(&t)).await,
            Err(e) => conn.reply_desk_error(reference, e).await,
        },
        ClientFrame::Typing { ticket, active } => {
            let Some((ticket, conversation)) = followed(conn, ticket) else {
                return conn
                    .reply_error(reference, ErrorCode::NotFound, "no such ticket")
                    .await;
            };
            let from = Author {
                kind: AuthorKind::Agent,
                id: Some(me.id.0),
                name: me.name.clone(),
            };
            desk.typing(ticket, conversation, from, active, conn.id)
                .await;
            Ok(())
        }
        ClientFrame::Read { ticket, seq } => {
            let Some((ticket, conversation)) = followed(conn, ticket) else {
                return conn
                    .reply_error(reference, ErrorCode::NotFound, "no such ticket")
                    .await;
            };
            match desk
                .read(ticket, conversation, AuthorKind::Agent, seq)
                .await
            {
                Ok(()) => Ok(()),
                Err(e) => conn.reply_desk_error(reference, e).await,
            }
        }
        ClientFrame::Sync { ticket, after } => match desk.readable_ticket(&me, ticket).await {
            Ok(t) if t.status == TicketStatus::Closed => {
                let ev = Event::denied(Action::TranscriptRead)
                    .customer(t.customer.id)
                    .object("transcript", t.id.0)
                    .detail("closed: needs an access grant");
                let _ = conn.app.audit(&conn.audit_ctx(), ev).await;
                conn.reply_error(
                    reference,
                    ErrorCode::Forbidden,
                    "a closed ticket's transcript opens only through an access grant",
                )
                .await
            }
            Ok(t) => {
                audit_read(conn, t.id, "sync").await;
                conn.replay(t.id, t.conversation, after).await
            }
            Err(e @ DeskError::Role) => {
                let mut ev = Event::denied(Action::TicketRead)
                    .object("ticket", ticket.0)
                    .detail("sync");
                if let Ok(t) = conn.app.store.ticket(ticket).await {
                    ev = ev.customer(t.customer.id);
                }
                let _ = conn.app.audit(&conn.audit_ctx(), ev).await;
                conn.reply_desk_error(reference, e).await
            }
            Err(e) => conn.reply_desk_error(reference, e).await,
        },
        ClientFrame::RequestVerification { ticket, action } => {
            let answer = Answer::Reply(reference.map(str::to_owned));
            let ctx = conn.audit_ctx();
            in_background(conn, answer, me, move |app, me| async move {
                let first = PauseFirst {
                    app: &app,
                    ctx: &ctx,
                };
                app.stepup
                    .request(&ctx, &me, ticket, &action, first)
                    .await
                    .map(|_| ())
            })
            .await
        }
        ClientFrame::ResendVerification { challenge } => {
            let answer = Answer::Reply(reference.map(str::to_owned));
            let ctx = conn.audit_ctx();
            in_background(conn, answer, me, move |app, me| async move {
                let first = PauseFirst {
                    app: &app,
                    ctx: &ctx,
                };
                app.stepup
                    .resend(&ctx, &me, challenge, first)
                    .await
                    .map(|_| ())
            })
            .await
        }
        ClientFrame::Verify { .. } => {
            conn.reply_error(
                reference,
                ErrorCode::Forbidden,
                "only the customer answers a verification",
            )
            .await
        }
        ClientFrame::Hello { .. } | ClientFrame::Ping => Ok(()),
    }
}

/// What a background step-up operation answers when it ends.
enum Answer {
    /// A frame of the agent's: `ok` or `error`, with its `ref`.
    Reply(Option<String>),
    /// An automatic request for this action: nothing when it worked (its `verification`
    /// frames say so), an `error` without `ref` naming it when it did not.
    Automatic(String),
}

/// A claimed ticket that was flagged for step-up: with `auto_request_on_claim`, the customer
/// is asked to verify for the flagged action at once, bound to the claiming agent. The
/// conversation is followed first, so the `verification` frames of the request reach this
/// connection.
async fn auto_request(conn: &mut Conn, me: User, t: &crate::store::Ticket) -> Flow {
    let stepup = conn.app.stepup.clone();
    let Some(action) = stepup.auto_request_due(&me, t.id).await else {
        return Ok(());
    };
    conn.follow(t.conversation, t.id, t.last_seq, false).await?;
    let ticket = t.id;
    let answer = Answer::Automatic(action.clone());
    let ctx = conn.audit_ctx();
    in_background(conn, answer, me, move |app, me| async move {
        let first = PauseFirst {
            app: &app,
            ctx: &ctx,
        };
        app.stepup
            .auto_request(&ctx, &me, ticket, &action, first)
            .await
            .map(|_| ())
    })
    .await
}

/// Runs a step-up operation that sends a code email off the connection task: the SMTP server
/// may take up to its timeout, and the agent's other frames must not wait for it. The answer
/// arrives when the operation ends. A connection runs a few such operations at once; more are
/// refused with `retry_later`.
async fn in_background<F, Fut>(conn: &mut Conn, answer: Answer, me: User, op: F) -> Flow
where
    F: FnOnce(crate::app::App, User) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), crate::stepup::StepUpError>> + Send + 'static,
{
    let Ok(slot) = conn.background.clone().try_acquire_owned() else {
        let reference = match &answer {
            Answer::Reply(r) => r.clone(),
            Answer::Automatic(_) => None,
        };
        return conn
            .reply_error(
                reference.as_deref(),
                ErrorCode::RetryLater,
                "other code emails of this connection are still being sent; retry when they are answered",
            )
            .await;
    };
    let later = conn.later(crate::bus::Topic::User(me.id));
    let app = conn.app.clone();
    conn.app.tracker.spawn(async move {
        let _slot = slot;
        let result = op(app.clone(), me).await;
        let frame = match (&answer, result) {
            (Answer::Automatic(_), Ok(())) => return,
            (Answer::Reply(reference), Ok(())) => ServerFrame::Ok {
                reference: reference.as_deref(),
                ticket: None,
            }
            .encode(),
            (answer, Err(e)) => {
                crate::metrics::inc(&app.metrics.frame_errors);
                let (code, message) = e.public();
                let (reference, message) = match answer {
                    Answer::Reply(r) => (r.as_deref(), message),
                    Answer::Automatic(action) => (
                        None,
                        format!("automatic verification for {action} not started: {message}"),
                    ),
                };
                ServerFrame::Error {
                    reference,
                    code,
                    message: &message,
                }
                .encode()
            }
        };
        later.send(frame).await;
    });
    Ok(())
}

async fn validate(
    conn: &mut Conn,
    reference: Option<&str>,
    client_id: String,
    text: String,
) -> Result<Option<(ClientId, MessageText)>, super::conn::Closing> {
    let client_id = match ClientId::parse(client_id) {
        Ok(c) => c,
        Err(why) => {
            conn.reply_error(reference, ErrorCode::InvalidFrame, why)
                .await?;
            return Ok(None);
        }
    };
    match MessageText::parse(text) {
        Ok(t) => Ok(Some((client_id, t))),
        Err(why) => {
            conn.reply_error(reference, ErrorCode::InvalidText, why)
                .await?;
            Ok(None)
        }
    }
}

async fn ok(
    conn: &mut Conn,
    reference: Option<&str>,
    ticket: Option<&crate::store::Ticket>,
) -> Flow {
    conn.send(ServerFrame::Ok { reference, ticket }.encode())
        .await
}
