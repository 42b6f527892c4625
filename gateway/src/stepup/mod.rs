//! Step-up verification as the gateway runs it: an agent asks for a customer's proof before a
//! sensitive action, the customer gets a code by email and answers in the widget, the ticket
//! is verified for that action for a while, and the server allows the action only then.
//! Also the staff second factor ([`mfa`]).
//!
//! The rules and their numbers are the `verify` crate's; the state lives in the store's
//! [`verify::VerificationStore`]; this module adds who may do what, the email, the live events
//! to the widget and the consoles, and the [`security`] events.

pub mod config;
pub mod keys;
pub mod mfa;
pub mod redis;
pub mod seal;
pub mod security;

use crate::audit::{Auditor, Context};
use crate::bus::{Audience, Event, Topic};
use crate::clock::{Clock, Timestamp};
use crate::desk::Desk;
use crate::hub::Hub;
use crate::ids::{CustomerId, TicketId, UserId};
use crate::metrics::{inc, VerificationOutcomes};
use crate::protocol::{PendingVerification, ServerFrame};
use crate::store::{Customer, Store, StoreError, Ticket, User};
use config::VerificationConfig;
use keys::Keys;
use secrecy::{ExposeSecret, SecretString};
use security::{Event as SecEvent, Kind};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use verify::challenge::{millis, ResendRefused};
use verify::lockout::{customer_locked, day_of};
use verify::mail::{Mail, MailError, Mailer, SmtpSettings};
use verify::risk::RiskPhrases;
use verify::store::VerifyStoreError;
use verify::template::Language;
use verify::{Challenge, ChallengeState, CheckOutcome, Code, VerificationStore};

#[derive(Debug, thiserror::Error)]
pub enum StepUpError {
    /// No such ticket or challenge, or not one the caller may see.
    #[error("not found")]
    NotFound,
    /// The caller may see it but may not do this (a ticket held by someone else).
    #[error("not permitted")]
    Forbidden,
    #[error("{0:?} is not an action that needs verification here")]
    UnknownAction(String),
    /// The customer has no verified email address (no signed identity with one).
    #[error("cannot verify this customer: no verified email address on file")]
    CannotVerify,
    /// Too many wrong codes today: step-up is locked for this customer until tomorrow (UTC).
    #[error("verification is locked for this customer today after too many wrong codes")]
    Locked,
    #[error("the code email could not be sent")]
    Mail(#[source] MailError),
    #[error("{0}")]
    Resend(ResendRefused),
    /// A sensitive action without a live verification of the ticket's customer for it.
    #[error("the customer has not been verified for {0} on this ticket")]
    VerificationRequired(String),
    /// The live verification was asked for by another agent (the ticket was transferred).
    #[error(
        "the customer was verified for {0} at another agent's request; ask for a new verification"
    )]
    VerifiedForAnother(String),
    #[error("a code is six digits")]
    BadCode,
    /// The challenge was no longer pending when the code arrived (approved by an earlier
    /// check, expired, canceled by a newer one, or out of attempts); nothing changed.
    #[error("this verification is {0}; ask the agent for a new code")]
    NotPending(ChallengeState),
    /// Staff second factor: wrong or replayed code (indistinguishable on purpose).
    #[error("the code is not valid")]
    WrongFactor,
    /// Staff login: the password was right and the user has a second factor, but no code was
    /// given; the console asks for it.
    #[error("enter the code from your authenticator app, or a recovery code")]
    FactorRequired,
    /// Staff second factor: too soon after wrong codes.
    #[error("too many wrong codes; retry in {0} seconds")]
    RetryLater(i64),
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The action takes card details and a call is going on in the ticket, but its recording
    /// could not be paused; no code was sent.
    #[error("the call's recording could not be paused for the card details: {0}")]
    NotPaused(String),
}

impl From<VerifyStoreError> for StepUpError {
    fn from(e: VerifyStoreError) -> Self {
        match e {
            VerifyStoreError::NotFound => StepUpError::NotFound,
            VerifyStoreError::Unavailable(m) => StepUpError::Unavailable(m),
        }
    }
}

impl From<StoreError> for StepUpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound | StoreError::Forbidden => StepUpError::NotFound,
            StoreError::Conflict(m) => StepUpError::Conflict(m),
            StoreError::Capacity => StepUpError::Conflict("at capacity"),
            StoreError::Unavailable(m) => StepUpError::Unavailable(m),
        }
    }
}

impl StepUpError {
    /// The public code and message of this error, for the REST API and WebSocket frames.
    pub fn public(&self) -> (crate::protocol::ErrorCode, String) {
        use crate::protocol::ErrorCode as C;
        match self {
            StepUpError::NotFound => (C::NotFound, "no such ticket or verification".into()),
            StepUpError::Forbidden => (C::Forbidden, "the ticket is not assigned to you".into()),
            StepUpError::UnknownAction(_) => (C::InvalidFrame, self.to_string()),
            StepUpError::CannotVerify => (C::CannotVerify, self.to_string()),
            StepUpError::Locked => (C::Locked, self.to_string()),
            StepUpError::Mail(e) => {
                tracing::warn!(error = %e, "code email not sent");
                let why = mail_failure(e);
                (
                    C::MailFailed,
                    format!("the code email could not be sent ({why}); nothing was changed, try again later"),
                )
            }
            StepUpError::Resend(ResendRefused::Cooldown { retry_after_ms }) => (
                C::RetryLater,
                format!(
                    "the code was sent moments ago; resend in {} seconds",
                    (retry_after_ms + 999) / 1000
                ),
            ),
            StepUpError::Resend(r) => (C::Conflict, r.to_string()),
            StepUpError::VerificationRequired(_) | StepUpError::VerifiedForAnother(_) => {
                (C::VerificationRequired, self.to_string())
            }
            StepUpError::BadCode => (C::InvalidFrame, self.to_string()),
            StepUpError::NotPending(_) => (C::Conflict, self.to_string()),
            StepUpError::WrongFactor => (C::Unauthenticated, self.to_string()),
            StepUpError::FactorRequired => (C::MfaRequired, self.to_string()),
            StepUpError::RetryLater(_) => (C::RetryLater, self.to_string()),
            StepUpError::Conflict(m) => (C::Conflict, (*m).to_string()),
            StepUpError::Unavailable(m) => {
                tracing::warn!(error = %m, "verification store unavailable");
                (
                    C::Unavailable,
                    "the store is unavailable; retry later".into(),
                )
            }
            StepUpError::NotPaused(m) => {
                tracing::warn!(error = %m, "a payment's verification refused: the recording did not pause");
                (
                    C::Unavailable,
                    "the call's recording could not be paused for the card details, so no code was sent; pause it yourself or try again".into(),
                )
            }
        }
    }
}

pub type StepUpResult<T> = Result<T, StepUpError>;

/// What must hold before a code goes out for an action on a ticket, run once every check has
/// passed and nothing has been sent or stored: with a call going on, an action that takes card
/// details pauses its recording first ([`crate::voice::call::pause_for_verification`]). An
/// error refuses the verification: no code is sent.
pub trait BeforeCode: Send {
    fn ready(
        self,
        ticket: TicketId,
        action: String,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

/// Why a code email was not sent, in words for the agent and the audit log (no addresses, no
/// server replies).
fn mail_failure(e: &MailError) -> &'static str {
    match e {
        MailError::Refused(_) => "the mail server refused it",
        MailError::Auth(_) => "the mail server did not accept the gateway's SMTP login",
        MailError::Timeout(_) => "the mail server did not answer in time",
        MailError::Config(_) | MailError::Address(_) => "the mail settings are invalid",
        MailError::Outbox(_) => "the outbox could not be written",
        MailError::Unreachable(_) => "the mail server could not be reached",
    }
}

/// A challenge as staff see it: its state, never its code.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct VerificationView {
    pub challenge: i64,
    pub ticket: TicketId,
    pub action: String,
    /// pending, approved, expired, canceled or max_attempts.
    #[schema(value_type = String)]
    pub state: ChallengeState,
    pub attempts_left: u32,
    pub resends_left: u32,
    pub expires_at: Timestamp,
    /// While approved: the ticket is verified for the action until then (the badge).
    pub verified_until: Option<Timestamp>,
    /// Where the code went, masked.
    pub destination: String,
    /// The agent who asked for it: an approval authorises their actions only.
    pub agent: UserId,
}

/// The verification state of a ticket: the latest challenge of each action, and whether its
/// first message flagged it for step-up.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TicketVerification {
    pub ticket: TicketId,
    /// The risk phrase the first message matched, if any.
    pub flagged: Option<String>,
    pub verifications: Vec<VerificationView>,
    /// The actions a verification may be requested for (the configured list), for the
    /// console's choice.
    pub actions: Vec<String>,
}

/// A sensitive action the gateway allowed.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ActionAuthorised {
    pub id: i64,
    pub ticket: TicketId,
    pub action: String,
    pub agent: UserId,
    /// The verification that allowed it.
    pub challenge: i64,
    pub verified_until: Option<Timestamp>,
    pub at: Timestamp,
}

/// What a customer's `verify` came to.
#[derive(Clone, Copy, Debug)]
pub struct CheckReply {
    pub challenge: i64,
    pub state: ChallengeState,
    pub attempts_left: u32,
    pub verified_until: Option<Timestamp>,
}

/// Where code emails go: the SMTP server, or without one the sealed outbox under the data
/// dir (neither address nor code in clear on disk).
/// Where code emails (and replies to offline customers) go: SMTP, or the sealed outbox.
pub enum Delivery {
    Smtp(Mailer),
    Outbox(crate::vault::outbox::SealedOutbox),
}

impl Delivery {
    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        match self {
            Delivery::Smtp(m) => m.send(mail).await,
            Delivery::Outbox(o) => o.send(mail).await.map(|_| ()),
        }
    }
}

pub struct StepUp {
    store: Arc<dyn Store>,
    /// Where challenges and the daily counts live when not in `store`: Redis, shared by the
    /// nodes ([`redis::RedisVerification`]).
    shared: Option<Arc<dyn VerificationStore>>,
    hub: Hub,
    clock: Arc<dyn Clock>,
    pub config: VerificationConfig,
    keys: Keys,
    mailer: Delivery,
    risk: RiskPhrases,
    /// The email language of each site that configures one (`[[sites]] language`).
    site_languages: HashMap<String, Language>,
    /// Every security event of step-up and second factors is also an audit entry.
    auditor: Arc<Auditor>,
    /// How verifications ended, for `/metrics` and the supervisor's dashboard.
    pub outcomes: VerificationOutcomes,
}

impl StepUp {
    /// Logs a security event and appends it to the audit log. A failed append is logged by
    /// the auditor; the verification itself goes on (its state is already committed).
    pub(crate) async fn record(&self, from: &Context, e: &SecEvent<'_>) {
        security::log(e);
        if let Some((mut ctx, event)) = security::audit_event(from, e) {
            // The entry names the actor's role as it is now.
            if let Some(actor) = e.actor {
                if let Ok(user) = self.store.user(actor).await {
                    ctx = ctx.by(&user);
                }
            }
            let _ = self.auditor.record(&ctx, event).await;
        }
    }

    /// Loads the key and sets up mail delivery: SMTP when configured, else the outbox under
    /// the data dir with a loud log line. The sites give their customers' default email
    /// language. With `shared`, challenges and daily counts are decided there.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gateway: &crate::config::Config,
        store: Arc<dyn Store>,
        shared: Option<Arc<dyn VerificationStore>>,
        hub: Hub,
        clock: Arc<dyn Clock>,
        auditor: Arc<Auditor>,
        vault: Arc<crate::vault::Vault>,
    ) -> anyhow::Result<StepUp> {
        let config = gateway.verification.clone();
        let (sites, data) = (&gateway.sites, gateway.data.as_path());
        let keys = Keys::load(config.key_file.as_deref(), data)?;
        let mailer = match &config.smtp {
            Some(s) => {
                let ca_pem = match &s.ca_file {
                    Some(p) => Some(std::fs::read(p).map_err(|e| {
                        anyhow::anyhow!("cannot read SMTP CA file {}: {e}", p.display())
                    })?),
                    None => None,
                };
                Delivery::Smtp(Mailer::smtp(&SmtpSettings {
                    host: s.host.clone(),
                    port: s.port,
                    tls: s.tls,
                    username: s.username.clone(),
                    password: s.password.clone(),
                    ca_pem,
                    timeout: s.timeout,
                })?)
            }
            None => {
                let dir = data.join("outbox");
                tracing::warn!(outbox = %dir.display(),
                    "NO SMTP SERVER CONFIGURED: verification codes are written, sealed, to files in the outbox instead of being emailed (read one with `deskgate vault open --data DIR FILE`); set DESKGATE_SMTP_HOST for real delivery");
                Delivery::Outbox(crate::vault::outbox::SealedOutbox::new(dir, vault))
            }
        };
        let risk = config.risk_phrases()?;
        let mut site_languages = HashMap::new();
        for site in sites {
            if let Some(tag) = &site.language {
                let lang = config::parse_language(tag)
                    .map_err(|e| anyhow::anyhow!("site {}: language {e}", site.key))?;
                site_languages.insert(site.key.clone(), lang);
            }
        }
        Ok(StepUp {
            store,
            shared,
            hub,
            clock,
            config,
            keys,
            mailer,
            risk,
            site_languages,
            auditor,
            outcomes: VerificationOutcomes::default(),
        })
    }

    /// The mail sender (SMTP or the outbox), also used for replies to offline customers.
    pub fn mailer(&self) -> &Delivery {
        &self.mailer
    }

    fn vs(&self) -> &dyn VerificationStore {
        match &self.shared {
            Some(shared) => shared.as_ref(),
            None => self.store.verification(),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now().0
    }

    async fn publish(&self, topic: Topic, audience: Audience, frame: Arc<str>) {
        if let Err(e) = self.hub.publish(Event::new(topic, audience, frame)).await {
            tracing::warn!(error = %e, "publish failed");
        }
    }

    fn view(&self, c: &Challenge) -> VerificationView {
        let rules = &self.config.rules;
        let now = self.now();
        VerificationView {
            challenge: c.id,
            ticket: TicketId(c.ticket),
            action: c.action.clone(),
            state: if c.state == ChallengeState::Approved && !c.is_live(now) {
                ChallengeState::Expired
            } else {
                c.state_at(now)
            },
            attempts_left: c.attempts_left(rules),
            resends_left: rules.max_resends.saturating_sub(c.resends),
            expires_at: Timestamp(c.expires_at),
            verified_until: c.verified_until.map(Timestamp),
            destination: c.destination.clone(),
            agent: UserId(c.agent),
        }
    }

    /// The ticket, if the agent holds it (it is assigned to them).
    async fn held_ticket(&self, agent: &User, id: TicketId) -> StepUpResult<Ticket> {
        let ticket = self.store.ticket(id).await?;
        if !Desk::may_read(agent, &ticket) {
            return Err(StepUpError::NotFound);
        }
        let holds = ticket.agent.as_ref().is_some_and(|a| a.id == agent.id);
        if !(holds && agent.role.works_tickets()) {
            return Err(StepUpError::Forbidden);
        }
        Ok(ticket)
    }

    fn check_action(&self, action: &str) -> StepUpResult<()> {
        if self.config.is_action(action) {
            Ok(())
        } else {
            Err(StepUpError::UnknownAction(
                action.chars().take(64).collect(),
            ))
        }
    }

    /// The customer's verified email: only from a signed identity, never one they typed.
    fn registered_email(customer: &Customer) -> StepUpResult<&str> {
        match (&customer.email, customer.verified) {
            (Some(e), true) if !e.is_empty() => Ok(e.as_str()),
            _ => Err(StepUpError::CannotVerify),
        }
    }

    async fn locked(&self, customer: CustomerId) -> StepUpResult<bool> {
        let n = self
            .vs()
            .customer_failures(customer.0, day_of(self.now()))
            .await?;
        Ok(customer_locked(n, self.config.rules.daily_failure_cap))
    }

    /// The language of the customer's code emails: their own (from the widget or their signed
    /// identity), else their site's, else the configured default.
    pub(crate) async fn language_of(&self, customer: &Customer) -> StepUpResult<Language> {
        let own = self.vs().customer_language(customer.id.0).await?;
        Ok(own
            .as_deref()
            .and_then(Language::parse)
            .or_else(|| self.site_languages.get(&customer.site).copied())
            .unwrap_or(self.config.language))
    }

    /// Remembers a customer's language for their code emails, if it is one with its own text.
    pub async fn remember_language(&self, customer: CustomerId, tag: &str) -> StepUpResult<()> {
        if let Some(lang) = Language::parse(tag) {
            self.vs()
                .set_customer_language(customer.0, lang.as_str(), self.now())
                .await?;
        }
        Ok(())
    }

    /// Runs `first` before a code goes out; if it fails, the refusal is audited under `ev`.
    async fn ready(
        &self,
        from: &Context,
        ev: &mut SecEvent<'_>,
        first: impl BeforeCode,
        ticket: TicketId,
        action: &str,
    ) -> StepUpResult<()> {
        match first.ready(ticket, action.to_string()).await {
            Ok(()) => Ok(()),
            Err(why) => {
                ev.kind = Some(Kind::VerificationSendFailed);
                ev.detail = Some("the call's recording could not be paused");
                self.record(from, ev).await;
                Err(StepUpError::NotPaused(why))
            }
        }
    }

    /// Emails a fresh code; returns the code's salt and keyed hash for the store.
    async fn send_code(
        &self,
        to: &str,
        lang: Language,
        action: &str,
    ) -> Result<(Vec<u8>, Vec<u8>), MailError> {
        let code = Code::generate();
        let salt = verify::code::salt();
        let hash = self.keys.code().hash(&salt, &code);
        let minutes = self.config.rules.code_ttl.as_secs() / 60;
        let rendered = verify::template::render(
            lang,
            &verify::template::CodeEmail {
                company: &self.config.company,
                action,
                code: code.expose(),
                minutes,
            },
        );
        let mail = Mail {
            from: self.config.from.clone(),
            to: to.to_string(),
            subject: rendered.subject,
            body: SecretString::from(rendered.body),
        };
        self.mailer.send(&mail).await?;
        Ok((salt.to_vec(), hash.to_vec()))
    }

    /// Starts a verification of the ticket's customer for `action`: emails a code, then stores
    /// the challenge (canceling an earlier pending one for the same action) and tells the
    /// customer's widget and the ticket's staff. If the email cannot be sent, nothing is
    /// stored and nothing earlier is canceled.
    pub async fn request(
        &self,
        from: &Context,
        agent: &User,
        ticket: TicketId,
        action: &str,
        first: impl BeforeCode,
    ) -> StepUpResult<VerificationView> {
        self.request_as(from, agent, ticket, action, false, first)
            .await
    }

    async fn request_as(
        &self,
        from: &Context,
        agent: &User,
        ticket: TicketId,
        action: &str,
        automatic: bool,
        first: impl BeforeCode,
    ) -> StepUpResult<VerificationView> {
        self.check_action(action)?;
        let ticket = self.held_ticket(agent, ticket).await?;
        let customer = self.store.customer(ticket.customer.id).await?;
        let email = Self::registered_email(&customer)?;
        let mut ev = SecEvent::new(Kind::VerificationSent);
        ev.actor = Some(agent.id);
        ev.customer = Some(customer.id);
        ev.ticket = Some(ticket.id);
        ev.action = Some(action);
        if automatic {
            ev.detail = Some("automatic on claim");
        }
        if self.locked(customer.id).await? {
            ev.kind = Some(Kind::VerificationRefusedLocked);
            self.record(from, &ev).await;
            return Err(StepUpError::Locked);
        }
        let lang = self.language_of(&customer).await?;
        self.ready(from, &mut ev, first, ticket.id, action).await?;
        let (salt, code_hash) = match self.send_code(email, lang, action).await {
            Ok(sent) => sent,
            Err(e) => {
                inc(&self.outcomes.mail_failed);
                ev.kind = Some(Kind::VerificationSendFailed);
                ev.detail = Some(mail_failure(&e));
                self.record(from, &ev).await;
                self.announce_unavailable(&ticket, action, None).await;
                return Err(StepUpError::Mail(e));
            }
        };
        let now = self.now();
        let created = self
            .vs()
            .create_challenge(verify::store::NewChallenge {
                ticket: ticket.id.0,
                customer: customer.id.0,
                agent: agent.id.0,
                action: action.to_string(),
                destination: verify::template::mask_email(email),
                salt,
                code_hash,
                now,
                expires_at: now + millis(self.config.rules.code_ttl),
            })
            .await?;
        ev.challenge = Some(created.challenge.id);
        self.record(from, &ev).await;
        for id in &created.canceled {
            if let Ok(c) = self.vs().challenge(*id).await {
                self.announce_state(&ticket, &c).await;
            }
        }
        self.announce_request(&ticket, &created.challenge).await;
        Ok(self.view(&created.challenge))
    }

    /// Sends a pending challenge's code again (a new code; the old one stops working), at
    /// most `max_resends` times and not within `resend_cooldown` of the last sending.
    pub async fn resend(
        &self,
        from: &Context,
        agent: &User,
        challenge: i64,
        first: impl BeforeCode,
    ) -> StepUpResult<VerificationView> {
        let c = self.vs().challenge(challenge).await?;
        let ticket = self.held_ticket(agent, TicketId(c.ticket)).await?;
        let now = self.now();
        c.may_resend(&self.config.rules, now)
            .map_err(StepUpError::Resend)?;
        let customer = self.store.customer(ticket.customer.id).await?;
        let email = Self::registered_email(&customer)?;
        if self.locked(customer.id).await? {
            return Err(StepUpError::Locked);
        }
        let mut ev = SecEvent::new(Kind::VerificationResent);
        ev.actor = Some(agent.id);
        ev.customer = Some(customer.id);
        ev.ticket = Some(ticket.id);
        ev.challenge = Some(c.id);
        ev.action = Some(&c.action);
        let lang = self.language_of(&customer).await?;
        self.ready(from, &mut ev, first, ticket.id, &c.action)
            .await?;
        let (salt, hash) = match self.send_code(email, lang, &c.action).await {
            Ok(sent) => sent,
            Err(e) => {
                inc(&self.outcomes.mail_failed);
                ev.kind = Some(Kind::VerificationSendFailed);
                ev.detail = Some(mail_failure(&e));
                self.record(from, &ev).await;
                self.announce_unavailable(&ticket, &c.action, Some(c.id))
                    .await;
                return Err(StepUpError::Mail(e));
            }
        };
        let updated = self
            .vs()
            .resend(c.id, &salt, &hash, self.now(), &self.config.rules)
            .await?;
        let Some(updated) = updated else {
            // Another resend won the race, or the challenge ended meanwhile.
            let again = self.vs().challenge(c.id).await?;
            return Err(StepUpError::Resend(
                again
                    .may_resend(&self.config.rules, self.now())
                    .err()
                    .unwrap_or(ResendRefused::Limit),
            ));
        };
        self.record(from, &ev).await;
        self.announce_request(&ticket, &updated).await;
        Ok(self.view(&updated))
    }

    /// The customer's answer from the widget's `verify` frame.
    pub async fn check(
        &self,
        from: &Context,
        customer: &Customer,
        challenge: i64,
        code: &SecretString,
    ) -> StepUpResult<CheckReply> {
        let c = match self.vs().challenge(challenge).await {
            Ok(c) if c.customer == customer.id.0 => c,
            Ok(_) | Err(VerifyStoreError::NotFound) => return Err(StepUpError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let code = Code::parse(code.expose_secret()).map_err(|_| StepUpError::BadCode)?;
        let mut ev = SecEvent::new(Kind::VerificationPassed);
        ev.customer = Some(customer.id);
        ev.ticket = Some(TicketId(c.ticket));
        ev.challenge = Some(c.id);
        ev.action = Some(&c.action);
        let right = self.keys.code().matches(&c.salt, &code, &c.code_hash);
        let rules = &self.config.rules;
        let checked = self
            .vs()
            .check(c.id, customer.id.0, right, self.now(), rules)
            .await?;
        let outcome = checked.outcome;
        let reply = match outcome {
            CheckOutcome::Approved { verified_until } => CheckReply {
                challenge: c.id,
                state: ChallengeState::Approved,
                attempts_left: rules.max_attempts.saturating_sub(c.attempts),
                verified_until: Some(Timestamp(verified_until)),
            },
            CheckOutcome::Wrong { attempts_left } => CheckReply {
                challenge: c.id,
                state: ChallengeState::Pending,
                attempts_left,
                verified_until: None,
            },
            CheckOutcome::MaxAttempts => CheckReply {
                challenge: c.id,
                state: ChallengeState::MaxAttempts,
                attempts_left: 0,
                verified_until: None,
            },
            CheckOutcome::NotPending(state) => {
                if state == ChallengeState::Expired {
                    inc(&self.outcomes.expired);
                }
                ev.kind = Some(Kind::VerificationFailed);
                ev.detail = Some("challenge not pending");
                self.record(from, &ev).await;
                return Err(StepUpError::NotPending(state));
            }
            CheckOutcome::Locked => {
                ev.kind = Some(Kind::VerificationRefusedLocked);
                self.record(from, &ev).await;
                return Err(StepUpError::Locked);
            }
        };
        let counted_wrong = matches!(
            outcome,
            CheckOutcome::Wrong { .. } | CheckOutcome::MaxAttempts
        );
        ev.kind = Some(match outcome {
            CheckOutcome::Approved { .. } => Kind::VerificationPassed,
            CheckOutcome::MaxAttempts => Kind::VerificationMaxAttempts,
            _ => Kind::VerificationFailed,
        });
        inc(match outcome {
            CheckOutcome::Approved { .. } => &self.outcomes.approved,
            CheckOutcome::MaxAttempts => &self.outcomes.max_attempts,
            _ => &self.outcomes.failed_code,
        });
        self.record(from, &ev).await;
        // The check that reached the cap, and only that one, raises the alert.
        if counted_wrong && checked.failures_today == rules.daily_failure_cap {
            self.lock_out(
                from,
                customer.id,
                TicketId(c.ticket),
                checked.failures_today,
            )
            .await;
        }
        if let (Ok(ticket), Ok(now)) = (
            self.store.ticket(TicketId(c.ticket)).await,
            self.vs().challenge(c.id).await,
        ) {
            self.announce_state(&ticket, &now).await;
        }
        Ok(reply)
    }

    /// The daily cap was reached: record it (the audit log keeps it for supervisors who
    /// connect later: `GET /api/alerts`) and alert every supervisor and admin online.
    async fn lock_out(
        &self,
        from: &Context,
        customer: CustomerId,
        ticket: TicketId,
        failures: u32,
    ) {
        inc(&self.outcomes.locked);
        let detail = format!("{failures} wrong codes today");
        let mut ev = SecEvent::new(Kind::VerificationLocked);
        ev.customer = Some(customer);
        ev.ticket = Some(ticket);
        ev.detail = Some(&detail);
        self.record(from, &ev).await;
        let alert =
            security::Alert::locked(Some(ticket), Some(customer), self.clock.now(), &detail);
        let frame = alert.frame();
        let users = match self.store.users().await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list supervisors for a security alert");
                return;
            }
        };
        for u in users
            .iter()
            .filter(|u| u.active && security::receives_alerts(u.role))
        {
            self.publish(Topic::User(u.id), Audience::Staff, frame.clone())
                .await;
        }
    }

    fn pending_view(&self, c: &Challenge) -> PendingVerification {
        PendingVerification {
            ticket: TicketId(c.ticket),
            challenge: c.id,
            action: c.action.clone(),
            expires_at: Timestamp(c.expires_at),
            attempts_left: c.attempts_left(&self.config.rules),
            destination: c.destination.clone(),
        }
    }

    /// The ticket's challenges still waiting for this customer's code, newest first: the
    /// widget asks for them again after a reload or in another tab.
    pub async fn pending_for(
        &self,
        customer: CustomerId,
        ticket: TicketId,
    ) -> StepUpResult<Vec<PendingVerification>> {
        let list = self.vs().pending_challenges(ticket.0, self.now()).await?;
        Ok(list
            .iter()
            .filter(|c| c.customer == customer.0)
            .map(|c| self.pending_view(c))
            .collect())
    }

    /// Tells the customer's widget that the code email could not be sent, so they are not left
    /// waiting for it. `challenge` is the one whose resend failed (its earlier code still works).
    async fn announce_unavailable(&self, ticket: &Ticket, action: &str, challenge: Option<i64>) {
        let frame = ServerFrame::VerificationUnavailable {
            ticket: ticket.id,
            action,
            challenge,
            reason: "mail_failed",
        }
        .encode();
        self.publish(
            Topic::Conversation(ticket.conversation),
            Audience::Customers,
            frame,
        )
        .await;
    }

    /// Security alerts of the last `since` (newest first, at most `limit`), for a supervisor
    /// or admin who was not online when they were raised: the same as the `security_alert`
    /// frames, read back from the audit log.
    pub async fn recent_alerts(
        &self,
        user: &User,
        since: Timestamp,
        limit: i64,
    ) -> StepUpResult<Vec<security::Alert>> {
        if !security::receives_alerts(user.role) {
            return Err(StepUpError::Forbidden);
        }
        let filter = crate::store::AuditFilter {
            actor: None,
            customer: None,
            object_kind: None,
            object_id: None,
            action: None,
            actions: vec![
                crate::audit::Action::VerificationLocked
                    .as_str()
                    .to_string(),
                crate::audit::Action::AnomalyAlert.as_str().to_string(),
            ],
            outcome: None,
            from: Some(since),
            to: None,
            before: None,
            limit,
        };
        let records = self.store.audit_search(&filter).await?;
        Ok(records
            .iter()
            .filter_map(security::Alert::from_audit)
            .collect())
    }

    /// Tells the customer's widget a code is on its way, and the ticket's staff the state.
    async fn announce_request(&self, ticket: &Ticket, c: &Challenge) {
        let frame = ServerFrame::VerificationRequested {
            verification: &self.pending_view(c),
        }
        .encode();
        self.publish(
            Topic::Conversation(ticket.conversation),
            Audience::Customers,
            frame,
        )
        .await;
        self.announce_state(ticket, c).await;
    }

    /// Tells the staff following the ticket a challenge's state (the badge when approved).
    async fn announce_state(&self, ticket: &Ticket, c: &Challenge) {
        let view = self.view(c);
        let frame = ServerFrame::Verification {
            verification: &view,
        }
        .encode();
        self.publish(
            Topic::Conversation(ticket.conversation),
            Audience::Staff,
            frame,
        )
        .await;
    }

    /// The live verification of the ticket for the action, if any.
    pub async fn live(&self, ticket: TicketId, action: &str) -> StepUpResult<Option<Challenge>> {
        Ok(self
            .vs()
            .live_verification(ticket.0, action, self.now())
            .await?)
    }

    /// The verification state of a ticket the user may read.
    pub async fn status(&self, user: &User, id: TicketId) -> StepUpResult<TicketVerification> {
        let ticket = self.store.ticket(id).await?;
        if !Desk::may_read(user, &ticket) {
            return Err(StepUpError::NotFound);
        }
        let list = self.vs().latest_challenges(id.0).await?;
        Ok(TicketVerification {
            ticket: id,
            flagged: self.store.step_up_flag(id).await?,
            verifications: list.iter().map(|c| self.view(c)).collect(),
            actions: self.config.actions.clone(),
        })
    }

    /// A sensitive action on a ticket: allowed only with a live verification of the ticket's
    /// customer for exactly this action, asked for by this agent, and recorded with the
    /// verification that allowed it. A verification another agent obtained (before a transfer)
    /// does not count: the customer proved themselves to that agent's request, and the new
    /// holder asks again.
    pub async fn perform(
        &self,
        from: &Context,
        agent: &User,
        id: TicketId,
        action: &str,
    ) -> StepUpResult<ActionAuthorised> {
        self.check_action(action)?;
        let ticket = self.held_ticket(agent, id).await?;
        let mut ev = SecEvent::new(Kind::ActionAuthorised);
        ev.actor = Some(agent.id);
        ev.customer = Some(ticket.customer.id);
        ev.ticket = Some(ticket.id);
        ev.action = Some(action);
        let live = self
            .live(ticket.id, action)
            .await?
            .filter(|c| c.customer == ticket.customer.id.0);
        let c = match live {
            Some(c) if c.agent == agent.id.0 => c,
            other => {
                ev.kind = Some(Kind::ActionRefused);
                let err = match other {
                    Some(_) => {
                        ev.detail = Some("verified for another agent");
                        StepUpError::VerifiedForAnother(action.to_string())
                    }
                    None => StepUpError::VerificationRequired(action.to_string()),
                };
                self.record(from, &ev).await;
                return Err(err);
            }
        };
        let done = self
            .vs()
            .record_action(ticket.id.0, action, agent.id.0, c.id, self.now())
            .await?;
        ev.challenge = Some(c.id);
        self.record(from, &ev).await;
        Ok(ActionAuthorised {
            id: done.id,
            ticket: ticket.id,
            action: done.action,
            agent: agent.id,
            challenge: c.id,
            verified_until: c.verified_until.map(Timestamp),
            at: Timestamp(done.at),
        })
    }

    /// A new ticket's first message: flag the ticket for step-up if it asks for something
    /// risky, and tell the queue.
    pub async fn on_ticket_opened(&self, from: &Context, ticket: &Ticket, first_text: &str) {
        let Some(found) = self.risk.flags(first_text) else {
            return;
        };
        let (phrase, action) = (found.phrase.clone(), found.action.clone());
        if let Err(e) = self
            .store
            .flag_for_step_up(ticket.id, &phrase, self.clock.now())
            .await
        {
            tracing::warn!(error = %e, "cannot flag ticket for step-up");
            return;
        }
        let mut ev = SecEvent::new(Kind::TicketFlagged);
        ev.ticket = Some(ticket.id);
        ev.customer = Some(ticket.customer.id);
        ev.action = action.as_deref();
        self.record(from, &ev).await;
        let frame = ServerFrame::StepUpFlag {
            ticket: ticket.id,
            phrase: &phrase,
        }
        .encode();
        self.publish(Topic::Queue, Audience::Staff, frame).await;
    }

    /// The action an automatic request would ask for when `agent` claims the ticket: with
    /// `auto_request_on_claim`, a ticket flagged by a phrase that names an action, unless this
    /// agent already has a pending or live verification of the ticket for it.
    pub async fn auto_request_due(&self, agent: &User, ticket: TicketId) -> Option<String> {
        if !self.config.auto_request_on_claim {
            return None;
        }
        let phrase = match self.store.step_up_flag(ticket).await {
            Ok(p) => p?,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the step-up flag");
                return None;
            }
        };
        let action = self.risk.action_for(&phrase)?.to_string();
        let now = self.now();
        let mine = |c: &Challenge| c.agent == agent.id.0 && c.action == action;
        match self.vs().pending_challenges(ticket.0, now).await {
            Ok(list) if list.iter().any(mine) => return None,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read pending challenges");
                return None;
            }
        }
        match self.live(ticket, &action).await {
            Ok(Some(c)) if mine(&c) => None,
            Ok(_) => Some(action),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read live verifications");
                None
            }
        }
    }

    /// The automatic request of [`StepUp::auto_request_due`], bound to the claiming agent as
    /// if they had asked; the audit entry says it was automatic.
    pub async fn auto_request(
        &self,
        from: &Context,
        agent: &User,
        ticket: TicketId,
        action: &str,
        first: impl BeforeCode,
    ) -> StepUpResult<VerificationView> {
        self.request_as(from, agent, ticket, action, true, first)
            .await
    }
}
