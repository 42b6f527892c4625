//! Replies by email: when an agent answers while none of the customer's tabs is connected
//! (to this node), the reply goes to the customer's email address, the one typed in the
//! pre-chat form or carried by a signed identity, through the same mail sender as
//! verification codes. The widget promises this ("we will reply by email") only to customers
//! whose address it knows.
//!
//! The email carries the agent's reply (already through the card-number screen) and says that
//! answers go through the chat, not to the email. Each ticket sends at most
//! [`MAX_PER_TICKET`] such emails from one node, so a long offline exchange cannot flood a
//! mailbox that someone else typed in.

use crate::app::App;
use crate::bus::Topic;
use crate::ids::TicketId;
use crate::store::{Message, Ticket};
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::Mutex;
use verify::mail::Mail;

/// Emails about one ticket, at most.
pub const MAX_PER_TICKET: u32 = 10;
/// Tickets remembered; past this the counts start again (memory bound, not a rule).
const MAX_TICKETS: usize = 100_000;

#[derive(Default)]
pub struct OfflineReplies {
    sent: Mutex<HashMap<TicketId, u32>>,
}

impl OfflineReplies {
    /// Counts one email for the ticket; false once it had its share.
    fn take(&self, ticket: TicketId) -> bool {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        if sent.len() >= MAX_TICKETS && !sent.contains_key(&ticket) {
            sent.clear();
        }
        let n = sent.entry(ticket).or_default();
        if *n >= MAX_PER_TICKET {
            return false;
        }
        *n += 1;
        true
    }
}

/// The email of an agent's reply, in the configured language (`en` or `ru`).
fn render(lang: &str, company: &str, agent: &str, text: &str) -> (String, String) {
    match lang {
        "ru" => (
            format!("{company}: ответ службы поддержки"),
            format!(
                "{agent} из службы поддержки {company} ответил(а) на ваше сообщение:\n\n{text}\n\n\
                 Ответить можно в чате на нашем сайте;\n\
                 письма на этот адрес не читаются.\n\
                 Сотрудники {company} никогда не спрашивают пароли,\n\
                 коды подтверждения и номера карт.\n\
                 Если вы нам не писали, просто удалите это письмо.\n"
            ),
        ),
        _ => (
            format!("{company} support replied to your message"),
            format!(
                "{agent} from {company} support replied to your message:\n\n{text}\n\n\
                 You can answer in the chat on our website;\n\
                 replies to this email are not read.\n\
                 {company} staff will never ask you for a password,\n\
                 a verification code or a card number.\n\
                 If you did not write to us, you can ignore this email.\n"
            ),
        ),
    }
}

/// An agent's reply was stored: email it if the customer has no tab connected and an address.
pub async fn agent_replied(app: &App, ticket: &Ticket, message: &Message) {
    if message.blocked
        || app
            .desk
            .hub
            .is_followed(Topic::Customer(ticket.customer.id))
    {
        return;
    }
    let customer = match app.store.customer(ticket.customer.id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, ticket = %ticket.id, "offline reply: customer unavailable");
            return;
        }
    };
    let Some(to) = customer.email.clone().filter(|e| !e.is_empty()) else {
        return;
    };
    if !app.offline_replies.take(ticket.id) {
        return;
    }
    let stepup = &app.stepup;
    let lang = match stepup.language_of(&customer).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, ticket = %ticket.id, "offline reply: language unavailable");
            stepup.config.language
        }
    };
    let (subject, body) = render(
        lang.as_str(),
        &stepup.config.company,
        &message.from.name,
        &message.text,
    );
    let mail = Mail {
        from: stepup.config.from.clone(),
        to,
        subject,
        body: SecretString::from(body),
    };
    match stepup.mailer().send(&mail).await {
        Ok(()) => {
            tracing::info!(ticket = %ticket.id, customer = %customer.id, "reply emailed to an offline customer")
        }
        Err(e) => {
            tracing::warn!(ticket = %ticket.id, error = %e, "reply email to an offline customer not sent")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_gets_at_most_its_share_of_emails() {
        let r = OfflineReplies::default();
        let t = TicketId(7);
        for _ in 0..MAX_PER_TICKET {
            assert!(r.take(t));
        }
        assert!(!r.take(t));
        assert!(r.take(TicketId(8)));
    }

    #[test]
    fn the_email_carries_the_reply_and_says_where_to_answer() {
        let (subject, body) = render("en", "ACME", "Grace", "Your parcel left today.");
        assert!(subject.contains("ACME"));
        assert!(body.contains("Grace from ACME support"));
        assert!(body.contains("Your parcel left today."));
        assert!(body.contains("replies to this email are not read"));
        let (_, ru) = render("ru", "ACME", "Grace", "Посылка в пути.");
        assert!(ru.contains("Посылка в пути.") && ru.contains("не читаются"));
    }
}
