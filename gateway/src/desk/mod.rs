//! The desk: what can happen to a ticket, for both the WebSocket sessions and the REST API.
//!
//! Every operation commits to the store first and only then publishes events, so nothing is
//! ever announced that a restart could lose. Authorisation that depends on a ticket's state is
//! checked inside the store's transaction; role checks happen here.

mod assign;
pub mod screening;

use crate::attachment::Upload;
use crate::audit::{self, Action, Auditor, Outcome};
use crate::bus::{Audience, Effect, Event, Topic};
use crate::clock::Clock;
use crate::config::DeskConfig;
use crate::hub::Hub;
use crate::ids::{ConnId, ConversationId, CustomerId, Seq, TicketId, UserId};
use crate::metrics::{inc, Metrics};
use crate::protocol::{ClientId, CustomerTicket, MessageText, QueueOp, ServerFrame};
use crate::screen::Finding;
use crate::store::{
    Appended, Author, AuthorKind, Customer, Message, NewMessage, Note, Store, StoreError, Ticket,
    TicketChange, TicketStatus, Transition, User,
};
use screening::{record_blocked, Screening, TailKey, PLACEHOLDER};
use std::sync::Arc;
use tokio::sync::Notify;

pub use assign::spawn_assigner;

/// A message handed to the desk, as stored, and what the card-number screen found in it.
#[derive(Debug)]
pub struct Sent {
    pub appended: Appended,
    /// Non-empty when the message was withheld and a placeholder stored in its place.
    pub findings: Vec<Finding>,
}

impl Sent {
    pub fn blocked(&self) -> bool {
        self.appended.message.blocked
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The caller's role may not do this at all.
    #[error("not permitted for this role")]
    Role,
    /// The text carries a payment card number and was not stored (internal notes).
    #[error("withheld: payment card number")]
    Blocked(Vec<Finding>),
}

pub type DeskResult<T> = Result<T, DeskError>;

pub struct Desk {
    pub store: Arc<dyn Store>,
    pub hub: Hub,
    pub clock: Arc<dyn Clock>,
    pub config: DeskConfig,
    pub metrics: Arc<Metrics>,
    /// Wakes the auto-assigner when a ticket is queued or an agent frees up.
    assign_kick: Notify,
    screening: Screening,
    /// Withheld card numbers are audit events.
    pub auditor: Arc<Auditor>,
}

impl Desk {
    pub fn new(
        store: Arc<dyn Store>,
        hub: Hub,
        clock: Arc<dyn Clock>,
        config: DeskConfig,
        metrics: Arc<Metrics>,
        auditor: Arc<Auditor>,
    ) -> Desk {
        Desk {
            store,
            hub,
            clock,
            config,
            metrics,
            assign_kick: Notify::new(),
            screening: Screening::default(),
            auditor,
        }
    }

    /// The oldest resolution time that still lets a customer message reopen a ticket.
    pub fn reopen_after(&self) -> crate::clock::Timestamp {
        self.clock.now().minus(self.config.reopen_window)
    }

    async fn publish(&self, event: Event) {
        if let Err(e) = self.hub.publish(event).await {
            // The change is committed; followers catch up from the store on their next frame
            // or reconnect.
            tracing::warn!(error = %e, "publish failed");
        }
    }

    /// Announces a stored message to every follower of its conversation.
    pub async fn publish_message(&self, ticket: TicketId, message: &Message) {
        let frame = ServerFrame::Message { ticket, message }.encode();
        let mut ev = Event::new(
            Topic::Conversation(message.conversation),
            Audience::Everyone,
            frame,
        );
        ev.seq = Some((message.conversation, message.seq));
        self.publish(ev).await;
    }

    /// Announces a ticket's new state: in full to staff, reduced to the customer, and to the
    /// queue view of every agent.
    pub async fn publish_ticket(&self, ticket: &Ticket) {
        self.publish_ticket_to_staff(ticket).await;
        let customer = ServerFrame::TicketCustomer {
            ticket: CustomerTicket::from(ticket),
        }
        .encode();
        let topic = Topic::Conversation(ticket.conversation);
        self.publish(Event::new(topic, Audience::Customers, customer))
            .await;
    }

    /// The staff half of [`Desk::publish_ticket`]: the conversation's staff and the queue view.
    async fn publish_ticket_to_staff(&self, ticket: &Ticket) {
        // A ticket that closes leaves the consoles without its subject.
        let ticket = &ticket.clone().outside_grant();
        let topic = Topic::Conversation(ticket.conversation);
        let staff = ServerFrame::TicketStaff { ticket }.encode();
        self.publish(Event::new(topic, Audience::Staff, staff))
            .await;
        let op = if ticket.status == TicketStatus::Queued {
            QueueOp::Upsert
        } else {
            QueueOp::Remove
        };
        let queue = ServerFrame::Queue { op, ticket }.encode();
        self.publish(Event::new(Topic::Queue, Audience::Staff, queue))
            .await;
    }

    /// Tells all devices of an agent that a ticket is now theirs, and has them follow it.
    async fn hand_to(&self, agent: UserId, ticket: &Ticket) {
        let mut ev = Event::new(
            Topic::User(agent),
            Audience::Staff,
            ServerFrame::TicketStaff { ticket }.encode(),
        );
        ev.effect = Some(Effect::Follow {
            conversation: ticket.conversation,
            ticket: ticket.id,
            after: ticket.last_seq,
        });
        self.publish(ev).await;
    }

    /// Tells all devices of an agent that a ticket left them.
    async fn take_from(&self, agent: UserId, ticket: &Ticket) {
        let mut ev = Event::new(
            Topic::User(agent),
            Audience::Staff,
            ServerFrame::TicketStaff { ticket }.encode(),
        );
        ev.effect = Some(Effect::Unfollow(ticket.conversation));
        self.publish(ev).await;
    }

    /// The message to store for what the sender typed: the text itself, or the placeholder
    /// when the screen finds a card number in it (with what it found).
    fn screened<'a>(
        &self,
        key: TailKey,
        author: Author,
        client_id: &'a ClientId,
        text: &'a MessageText,
    ) -> (NewMessage<'a>, Vec<Finding>) {
        let findings = self.screening.check(key, text.as_str());
        let blocked = !findings.is_empty();
        let msg = NewMessage {
            author,
            text: if blocked { PLACEHOLDER } else { text.as_str() },
            client_id: client_id.as_str(),
            blocked,
            attachment: None,
        };
        (msg, findings)
    }

    /// The message to store for a file: the file with its name as text, or the placeholder
    /// (and no file) when its name or, for text, its content holds a card number. A file is
    /// screened alone: it does not continue what the sender typed before it.
    fn screened_file<'a>(
        &self,
        author: Author,
        client_id: &'a ClientId,
        file: &'a Upload,
    ) -> (NewMessage<'a>, Vec<Finding>) {
        let mut findings = self.screening.check_alone(file.name.as_str());
        if let Some(text) = file.text() {
            findings.extend(self.screening.check_alone(text));
        }
        let blocked = !findings.is_empty();
        let msg = NewMessage {
            author,
            text: if blocked {
                PLACEHOLDER
            } else {
                file.name.as_str()
            },
            client_id: client_id.as_str(),
            blocked,
            attachment: (!blocked).then_some(&file.file),
        };
        (msg, findings)
    }

    /// Stores a customer's message. `open` is the ticket and conversation the customer's
    /// connection holds as open, if any; the store checks it and falls back when it is not.
    /// `ctx` says where the customer is (their connection), for the audit log.
    pub async fn customer_send(
        &self,
        ctx: &audit::Context,
        customer: &Customer,
        open: Option<(TicketId, ConversationId)>,
        client_id: &ClientId,
        text: &MessageText,
    ) -> DeskResult<Sent> {
        let author = Author {
            kind: AuthorKind::Customer,
            id: Some(customer.id.0),
            name: customer.name.clone(),
        };
        let key = TailKey::Customer(customer.id);
        let (msg, findings) = self.screened(key, author, client_id, text);
        self.customer_append(ctx, customer, open, msg, findings, Some(key))
            .await
    }

    /// Stores a file a customer attached, in their open conversation (or a new one), as a
    /// message carrying it; one whose name or text holds a card number is withheld as a
    /// message would be, and the file is not stored.
    pub async fn customer_attach(
        &self,
        ctx: &audit::Context,
        customer: &Customer,
        client_id: &ClientId,
        file: &Upload,
    ) -> DeskResult<Sent> {
        let author = Author {
            kind: AuthorKind::Customer,
            id: Some(customer.id.0),
            name: customer.name.clone(),
        };
        let (msg, findings) = self.screened_file(author, client_id, file);
        self.customer_append(ctx, customer, None, msg, findings, None)
            .await
    }

    async fn customer_append(
        &self,
        ctx: &audit::Context,
        customer: &Customer,
        open: Option<(TicketId, ConversationId)>,
        msg: NewMessage<'_>,
        findings: Vec<Finding>,
        key: Option<TailKey>,
    ) -> DeskResult<Sent> {
        let blocked = msg.blocked;
        let now = self.clock.now();
        let appended = self
            .store
            .append_customer_message(customer, open, msg, now, self.reopen_after())
            .await
            .inspect_err(|_| {
                inc(&self.metrics.store_errors);
                if let Some(key) = key {
                    self.screening.forget(key);
                }
            })?;
        if blocked && !appended.duplicate {
            inc(&self.metrics.messages_blocked);
            record_blocked(
                &findings,
                "customer",
                customer.id.0,
                Some(appended.ticket),
                Some(appended.message.conversation),
            );
            self.audit_blocked(ctx, customer.id, appended.ticket).await;
        }
        if appended.duplicate {
            return Ok(Sent { appended, findings });
        }
        inc(&self.metrics.messages_stored);
        if let Some(TicketChange::Opened(t)) = &appended.change {
            // Every tab of the customer, this one included, starts following the new
            // conversation; each reads the ticket's state once it follows, so none is told here.
            let ev = Event::effect(
                Topic::Customer(customer.id),
                Effect::Follow {
                    conversation: t.conversation,
                    ticket: t.id,
                    after: Seq(0),
                },
            );
            self.publish(ev).await;
        }
        self.publish_message(appended.ticket, &appended.message)
            .await;
        match &appended.change {
            Some(TicketChange::Opened(t)) => {
                self.publish_ticket_to_staff(t).await;
                self.assign_kick.notify_one();
            }
            Some(TicketChange::Reopened(t)) => {
                self.publish_ticket(t).await;
                self.assign_kick.notify_one();
            }
            None => {}
        }
        Ok(Sent { appended, findings })
    }

    pub async fn agent_send(
        &self,
        ctx: &audit::Context,
        user: &User,
        ticket: TicketId,
        client_id: &ClientId,
        text: &MessageText,
    ) -> DeskResult<Sent> {
        if !user.role.works_tickets() {
            return Err(DeskError::Role);
        }
        let author = Author {
            kind: AuthorKind::Agent,
            id: Some(user.id.0),
            name: user.name.clone(),
        };
        // An agent must not paste a card number to a customer either.
        let key = TailKey::Agent(ticket, user.id);
        let (msg, findings) = self.screened(key, author, client_id, text);
        self.agent_append(ctx, user, ticket, msg, findings, Some(key))
            .await
    }

    /// Stores a file an agent attached to a ticket assigned to them, screened as
    /// [`Desk::customer_attach`] does.
    pub async fn agent_attach(
        &self,
        ctx: &audit::Context,
        user: &User,
        ticket: TicketId,
        client_id: &ClientId,
        file: &Upload,
    ) -> DeskResult<Sent> {
        if !user.role.works_tickets() {
            return Err(DeskError::Role);
        }
        let author = Author {
            kind: AuthorKind::Agent,
            id: Some(user.id.0),
            name: user.name.clone(),
        };
        let (msg, findings) = self.screened_file(author, client_id, file);
        self.agent_append(ctx, user, ticket, msg, findings, None)
            .await
    }

    async fn agent_append(
        &self,
        ctx: &audit::Context,
        user: &User,
        ticket: TicketId,
        msg: NewMessage<'_>,
        findings: Vec<Finding>,
        key: Option<TailKey>,
    ) -> DeskResult<Sent> {
        let blocked = msg.blocked;
        let appended = self
            .store
            .append_agent_message(ticket, user.id, msg, self.clock.now())
            .await
            .inspect_err(|_| {
                if let Some(key) = key {
                    self.screening.forget(key);
                }
            })?;
        if !appended.duplicate {
            if blocked {
                inc(&self.metrics.messages_blocked);
                record_blocked(
                    &findings,
                    "agent",
                    user.id.0,
                    Some(ticket),
                    Some(appended.message.conversation),
                );
                if let Ok(t) = self.store.ticket(ticket).await {
                    self.audit_blocked(ctx, t.customer.id, ticket).await;
                }
            }
            inc(&self.metrics.messages_stored);
            self.publish_message(appended.ticket, &appended.message)
                .await;
        }
        Ok(Sent { appended, findings })
    }

    /// Claims a queued ticket for `agent`. Of two racing claims, the store lets exactly one win.
    pub async fn claim(&self, user: &User, ticket: TicketId) -> DeskResult<Ticket> {
        if !user.role.works_tickets() {
            return Err(DeskError::Role);
        }
        let tr = self.store.claim(ticket, user.id, self.clock.now()).await?;
        self.after_assignment(user.id, &tr).await;
        Ok(tr.ticket)
    }

    async fn after_assignment(&self, agent: UserId, tr: &Transition) {
        self.publish_message(tr.ticket.id, &tr.message).await;
        self.publish_ticket(&tr.ticket).await;
        self.hand_to(agent, &tr.ticket).await;
    }

    pub async fn transfer(
        &self,
        user: &User,
        ticket: TicketId,
        to: Option<UserId>,
    ) -> DeskResult<Ticket> {
        if !user.role.works_tickets() {
            return Err(DeskError::Role);
        }
        let tr = self
            .store
            .transfer(ticket, user.id, to, self.clock.now())
            .await?;
        self.publish_message(tr.ticket.id, &tr.message).await;
        self.publish_ticket(&tr.ticket).await;
        self.take_from(user.id, &tr.ticket).await;
        match to {
            Some(to) => self.hand_to(to, &tr.ticket).await,
            None => self.assign_kick.notify_one(),
        }
        Ok(tr.ticket)
    }

    pub async fn resolve(&self, user: &User, ticket: TicketId) -> DeskResult<Ticket> {
        if !user.role.works_tickets() {
            return Err(DeskError::Role);
        }
        let tr = self
            .store
            .resolve(ticket, user.id, self.clock.now())
            .await?;
        self.publish_message(tr.ticket.id, &tr.message).await;
        self.publish_ticket(&tr.ticket).await;
        self.take_from(user.id, &tr.ticket).await;
        self.assign_kick.notify_one();
        Ok(tr.ticket)
    }

    /// Whether a staff user may read a ticket: queued ones and their own for those who work
    /// tickets, all for leads, supervisors and admins; approvers none.
    pub fn may_read(user: &User, ticket: &Ticket) -> bool {
        use crate::auth::Permission;
        user.role.can(Permission::ReadAllTickets)
            || (user.role.can(Permission::WorkTickets)
                && (ticket.status == TicketStatus::Queued
                    || ticket.agent.as_ref().map(|a| a.id) == Some(user.id)))
    }

    /// A ticket the user may read: a missing one is `NotFound`, someone else's is refused
    /// with [`DeskError::Role`] (callers audit the refusal).
    pub async fn readable_ticket(&self, user: &User, id: TicketId) -> DeskResult<Ticket> {
        let t = self.store.ticket(id).await?;
        if Self::may_read(user, &t) {
            Ok(t)
        } else {
            Err(DeskError::Role)
        }
    }

    /// Records a withheld card number in the audit log: who, which customer and ticket;
    /// never the number.
    async fn audit_blocked(&self, ctx: &audit::Context, customer: CustomerId, ticket: TicketId) {
        let ev = audit::Event::new(Action::CardNumberBlocked, Outcome::Denied)
            .customer(customer)
            .object("ticket", ticket.0);
        let _ = self.auditor.record(ctx, ev).await;
    }

    /// Adds an internal note; staff following the conversation see it, customers never do.
    pub async fn note(
        &self,
        ctx: &audit::Context,
        user: &User,
        ticket: TicketId,
        client_id: &ClientId,
        text: &MessageText,
    ) -> DeskResult<(Note, bool)> {
        let t = self.store.ticket(ticket).await?;
        let own = t.agent.as_ref().map(|a| a.id) == Some(user.id);
        if !(own || user.role.sees_all_tickets()) {
            return Err(StoreError::NotFound.into());
        }
        let findings = self.screening.check_alone(text.as_str());
        if !findings.is_empty() {
            inc(&self.metrics.messages_blocked);
            record_blocked(&findings, "agent", user.id.0, Some(ticket), None);
            self.audit_blocked(ctx, t.customer.id, ticket).await;
            return Err(DeskError::Blocked(findings));
        }
        let (note, duplicate) = self
            .store
            .add_note(
                ticket,
                user.id,
                client_id.as_str(),
                text.as_str(),
                self.clock.now(),
            )
            .await?;
        if !duplicate {
            let frame = ServerFrame::Note { note: &note }.encode();
            self.publish(Event::new(
                Topic::Conversation(t.conversation),
                Audience::Staff,
                frame,
            ))
            .await;
        }
        Ok((note, duplicate))
    }

    /// Relays a typing indicator to the other followers of the conversation; not stored.
    pub async fn typing(
        &self,
        ticket: TicketId,
        conversation: ConversationId,
        from: Author,
        active: bool,
        origin: ConnId,
    ) {
        let frame = ServerFrame::Typing {
            ticket,
            from: &from,
            active,
        }
        .encode();
        let mut ev = Event::new(Topic::Conversation(conversation), Audience::Everyone, frame);
        ev.skip = Some(origin);
        self.publish(ev).await;
    }

    /// Records and relays a read receipt.
    pub async fn read(
        &self,
        ticket: TicketId,
        conversation: ConversationId,
        by: AuthorKind,
        seq: Seq,
    ) -> DeskResult<()> {
        let seq = self.store.mark_read(conversation, by, seq).await?;
        let frame = ServerFrame::Read { ticket, by, seq }.encode();
        self.publish(Event::new(
            Topic::Conversation(conversation),
            Audience::Everyone,
            frame,
        ))
        .await;
        Ok(())
    }

    /// Closes the connections of a user whose access changed; they must log in again.
    pub async fn revoke(&self, user: UserId) {
        let ev = Event::effect(
            Topic::User(user),
            Effect::Close(crate::protocol::close::REVOKED),
        );
        self.publish(ev).await;
    }

    /// An agent came online or freed capacity: let the assigner look at the queue.
    pub fn kick_assigner(&self) {
        self.assign_kick.notify_one();
    }
}
