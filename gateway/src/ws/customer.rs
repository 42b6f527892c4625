//! Frames of a customer connection (`/ws/customer`). A customer has at most one open
//! conversation; their frames name no ticket, the gateway knows which one is theirs.

use super::conn::{closing, Closing, Conn, Flow, Who};
use crate::ids::{ConversationId, Seq, TicketId};
use crate::limits::Rule;
use crate::protocol::{
    close, ClientFrame, ClientId, CustomerSelf, CustomerTicket, ErrorCode, Inbound, MessageText,
    OpenConversation, ResumePoint, ServerFrame,
};
use crate::store::{Author, AuthorKind, Customer};

/// The customer on this connection; the handlers here are only reached for customers.
fn customer(conn: &Conn) -> Result<Customer, Closing> {
    match &conn.who {
        Who::Customer(c) => Ok(c.clone()),
        Who::Staff(_) => Err(closing(close::INTERNAL, "not a customer")),
    }
}

pub(super) fn set_current(conn: &mut Conn, ticket: TicketId, conversation: ConversationId) {
    conn.current = Some((ticket, conversation));
}

/// Makes a conversation this tab's current one; one not followed yet (just opened, here or in
/// another tab) is followed from its start, and the tab is sent the ticket's state. The state is
/// read after subscribing, so a change made meanwhile is either in it or arrives as its own
/// `ticket` frame afterwards.
pub(super) async fn make_current(
    conn: &mut Conn,
    ticket: TicketId,
    conversation: ConversationId,
) -> Flow {
    set_current(conn, ticket, conversation);
    if conn.follows.contains_key(&conversation) {
        return Ok(());
    }
    conn.follow(conversation, ticket, Seq(0), false).await?;
    let t = conn
        .app
        .store
        .ticket(ticket)
        .await
        .map_err(|_| closing(close::INTERNAL, "store unavailable"))?;
    let frame = ServerFrame::TicketCustomer {
        ticket: CustomerTicket::from(&t),
    }
    .encode();
    conn.send(frame).await
}

pub(super) async fn welcome(conn: &mut Conn, resume: &[ResumePoint]) -> Flow {
    let me = customer(conn)?;
    let current = conn
        .app
        .store
        .current_ticket(me.id, conn.app.desk.reopen_after())
        .await
        .map_err(|_| closing(close::INTERNAL, "store unavailable"))?;
    let open = current.as_ref().map(|t| OpenConversation {
        conversation: t.conversation,
        ticket: t.id,
        status: t.status,
        last_seq: t.last_seq,
        customer_read_seq: t.customer_read_seq,
        agent_read_seq: t.agent_read_seq,
    });
    // A code asked for before this tab connected (a reload, another tab): ask again. A store
    // hiccup here only costs the reminder; the live frames still come.
    let verifications = match &current {
        Some(t) => conn
            .app
            .stepup
            .pending_for(me.id, t.id)
            .await
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let frame = ServerFrame::WelcomeCustomer {
        customer: CustomerSelf {
            id: me.id,
            name: me.name.clone(),
            verified: me.verified,
            email_on_file: me.email.as_deref().is_some_and(|e| !e.is_empty()),
        },
        conversation: open,
        verifications: &verifications,
    }
    .encode();
    conn.send(frame).await?;
    if let Some(t) = &current {
        set_current(conn, t.id, t.conversation);
        let asked = resume.iter().find(|r| r.conversation == t.conversation);
        match asked {
            Some(r) => conn.follow(t.conversation, t.id, r.after, true).await?,
            None => conn.follow(t.conversation, t.id, t.last_seq, false).await?,
        }
    }
    for r in resume {
        if current
            .as_ref()
            .is_some_and(|t| t.conversation == r.conversation)
        {
            continue;
        }
        // An earlier conversation of this customer: replay it, but do not follow it.
        match conn.app.store.ticket_by_conversation(r.conversation).await {
            Ok(t) if t.customer.id == me.id => conn.replay(t.id, t.conversation, r.after).await?,
            _ => {
                conn.reply_error(None, ErrorCode::NotFound, "no such conversation")
                    .await?
            }
        }
    }
    Ok(())
}

pub(super) async fn on_frame(conn: &mut Conn, inbound: Inbound) -> Flow {
    let reference = inbound.reference.as_deref();
    match inbound.frame {
        ClientFrame::Send {
            client_id, text, ..
        } => send(conn, reference, client_id, text).await,
        ClientFrame::Typing { active, .. } => {
            let Some((ticket, conversation)) = conn.current else {
                return conn
                    .reply_error(reference, ErrorCode::NotFound, "no open conversation")
                    .await;
            };
            let me = customer(conn)?;
            let from = Author {
                kind: AuthorKind::Customer,
                id: Some(me.id.0),
                name: me.name,
            };
            let id = conn.id;
            conn.app
                .desk
                .typing(ticket, conversation, from, active, id)
                .await;
            Ok(())
        }
        ClientFrame::Read { seq, .. } => {
            let Some((ticket, conversation)) = conn.current else {
                return conn
                    .reply_error(reference, ErrorCode::NotFound, "no open conversation")
                    .await;
            };
            read(conn, reference, ticket, conversation, seq).await
        }
        ClientFrame::Verify { challenge, code } => verify(conn, reference, challenge, code).await,
        _ => {
            conn.reply_error(
                reference,
                ErrorCode::Forbidden,
                "customers may not send this frame",
            )
            .await
        }
    }
}

/// The customer's answer to a verification: checked by the step-up service, never stored or
/// relayed as a message.
async fn verify(
    conn: &mut Conn,
    reference: Option<&str>,
    challenge: i64,
    code: secrecy::SecretString,
) -> Flow {
    let me = customer(conn)?;
    let ip = conn.audit_ctx().ip.unwrap_or_default();
    let rules = [
        (Rule::VerifyPerVisitor, me.id.0.to_string()),
        (Rule::VerifyPerIp, ip),
    ];
    if conn.limited(reference, &rules).await? {
        return Ok(());
    }
    let stepup = conn.app.stepup.clone();
    match stepup.check(&conn.audit_ctx(), &me, challenge, &code).await {
        Ok(r) => {
            let frame = ServerFrame::VerificationResult {
                reference,
                challenge: r.challenge,
                state: r.state,
                attempts_left: r.attempts_left,
                verified_until: r.verified_until,
            }
            .encode();
            conn.send(frame).await
        }
        Err(e) => {
            let (code, message) = e.public();
            conn.reply_error(reference, code, &message).await
        }
    }
}

async fn send(conn: &mut Conn, reference: Option<&str>, client_id: String, text: String) -> Flow {
    let client_id = match ClientId::parse(client_id) {
        Ok(c) => c,
        Err(why) => {
            return conn
                .reply_error(reference, ErrorCode::InvalidFrame, why)
                .await
        }
    };
    let text = match MessageText::parse(text) {
        Ok(t) => t,
        Err(why) => {
            return conn
                .reply_error(reference, ErrorCode::InvalidText, why)
                .await
        }
    };
    let me = customer(conn)?;
    if conn
        .limited(
            reference,
            &[(Rule::MessagesPerVisitor, me.id.0.to_string())],
        )
        .await?
    {
        return Ok(());
    }
    let desk = conn.app.desk.clone();
    let ctx = conn.audit_ctx();
    match desk
        .customer_send(&ctx, &me, conn.current, &client_id, &text)
        .await
    {
        Ok(sent) => {
            conn.reply_sent(reference, client_id.as_str(), &sent)
                .await?;
            let a = &sent.appended;
            if let Some(crate::store::TicketChange::Opened(t)) = &a.change {
                conn.app
                    .stepup
                    .on_ticket_opened(&ctx, t, text.as_str())
                    .await;
            }
            if a.duplicate {
                // An earlier send: its conversation is followed already, or long closed.
                return Ok(());
            }
            make_current(conn, a.ticket, a.message.conversation).await
        }
        Err(e) => conn.reply_desk_error(reference, e).await,
    }
}

async fn read(
    conn: &mut Conn,
    reference: Option<&str>,
    ticket: TicketId,
    conversation: ConversationId,
    seq: Seq,
) -> Flow {
    let desk = conn.app.desk.clone();
    match desk
        .read(ticket, conversation, AuthorKind::Customer, seq)
        .await
    {
        Ok(()) => Ok(()),
        Err(e) => conn.reply_desk_error(reference, e).await,
    }
}
