//! A step-up code keyed in on the phone: a caller has no widget to type the emailed code into,
//! so while their ticket has a verification waiting for them, the keys they press on the
//! phone's keypad are the code.
//!
//! Six digits are checked as the widget's `verify` frame would be (the same attempts, daily
//! cap, rate limit per customer and audit); `#` checks what was keyed so far, `*` starts
//! again, and a pause of more than [`KEY_GAP`] between keys drops what was keyed. The digits
//! go nowhere but the check: not to the agent (who is told how many keys were pressed and the
//! outcome), not to the log, not to the store. From the first key until the entry ends, the caller's audio reaches the
//! agent and the recording as silence, so the keys' tones are neither heard nor recorded.
//! The caller hears two short high beeps for a code that verified them and one low tone for
//! one that did not.
//!
//! Without a waiting verification a key is a plain DTMF event for the agent
//! ([`Call::dtmf`]).

use super::call::{AgentOut, Call, CustomerOut};
use super::media::Rate;
use crate::app::App;
use crate::audit::Context;
use crate::stepup::StepUpError;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use verify::ChallengeState;
use zeroize::Zeroizing;

/// Digits in a code.
pub const CODE_LEN: usize = 6;

/// The longest pause between two keys of one entry.
pub const KEY_GAP: Duration = Duration::from_secs(5);

/// How long the caller stays muted after an entry ends: the last key's tone fades.
const TAIL: Duration = Duration::from_millis(300);

/// The keys a caller has pressed towards a code, on one phone leg.
#[derive(Default)]
pub struct Keypad {
    digits: Zeroizing<String>,
    /// The challenge the entry answers, read at its first key.
    challenge: Option<i64>,
    last_key: Option<Instant>,
    /// The caller's audio is silence until then.
    mute_until: Option<Instant>,
}

/// How an entry ended, as the agent is told (`{"type": "keypad", "result": …}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Approved,
    Wrong {
        attempts_left: u32,
    },
    MaxAttempts,
    /// `#` before six digits: nothing was checked.
    Incomplete,
    /// `*`: the caller starts again.
    Cleared,
    /// The verification ended (a newer one, an expiry) before the code arrived.
    NotPending,
    Locked,
    /// The store could not be reached: nothing was checked, the caller keys the code again.
    Unavailable,
    /// Past `verify_per_visitor`, the same limit as the widget's: nothing was checked.
    RateLimited,
}

impl Outcome {
    fn event(self) -> Value {
        let result = match self {
            Outcome::Approved => "approved",
            Outcome::Wrong { .. } => "wrong",
            Outcome::MaxAttempts => "max_attempts",
            Outcome::Incomplete => "incomplete",
            Outcome::Cleared => "cleared",
            Outcome::NotPending => "not_pending",
            Outcome::Locked => "locked",
            Outcome::Unavailable => "unavailable",
            Outcome::RateLimited => "rate_limited",
        };
        let mut v = json!({"type": "keypad", "keys": 0, "result": result});
        if let Outcome::Wrong { attempts_left } = self {
            v["attempts_left"] = json!(attempts_left);
        }
        v
    }

    /// What the caller hears: none for `*`, beeps for a pass, a low tone for the rest.
    fn tone(self) -> Option<Vec<i16>> {
        let rate = Rate::Hz8000;
        match self {
            Outcome::Cleared => None,
            Outcome::Approved => {
                let mut t = tone(1400.0, 150, rate);
                t.extend(std::iter::repeat_n(0, samples(100, rate)));
                t.extend(tone(1400.0, 150, rate));
                Some(t)
            }
            _ => Some(tone(400.0, 450, rate)),
        }
    }
}

fn samples(ms: u32, rate: Rate) -> usize {
    (rate.hz() as usize) * ms as usize / 1000
}

/// `ms` of a sine at `hz`, at a third of full scale.
fn tone(hz: f64, ms: u32, rate: Rate) -> Vec<i16> {
    let n = samples(ms, rate);
    let step = 2.0 * std::f64::consts::PI * hz / f64::from(rate.hz());
    (0..n)
        .map(|i| (10_000.0 * (step * i as f64).sin()) as i16)
        .collect()
}

impl Keypad {
    /// The caller's frame as the agent and the recording get it: silence during an entry.
    pub fn screen(&self, mut frame: Vec<i16>) -> Vec<i16> {
        if self.mute_until.is_some_and(|t| Instant::now() < t) {
            frame.fill(0);
        }
        frame
    }

    fn reset(&mut self) {
        self.digits.clear();
        self.challenge = None;
        self.last_key = None;
    }

    /// A key the caller pressed (already checked to be one of 0-9, `*`, `#`, A-D).
    pub async fn press(&mut self, app: &App, call: &Call, ctx: &Context, key: &str) {
        let now = Instant::now();
        if self
            .last_key
            .is_some_and(|t| now.duration_since(t) > KEY_GAP)
        {
            self.reset();
        }
        if self.challenge.is_none() {
            match app.stepup.pending_for(call.customer, call.ticket).await {
                Ok(list) => match list.first() {
                    Some(p) => self.challenge = Some(p.challenge),
                    None => return call.dtmf(key),
                },
                Err(e) => {
                    // The key may be part of a code: it goes nowhere.
                    tracing::warn!(call = %call.id, error = %e, "cannot read the caller's verifications");
                    return self.end(call, Outcome::Unavailable);
                }
            }
        }
        self.last_key = Some(now);
        self.mute_until = Some(now + KEY_GAP);
        match key {
            "*" => self.end(call, Outcome::Cleared),
            // Six digits are checked as the sixth arrives: `#` comes before that.
            "#" => self.end(call, Outcome::Incomplete),
            d if d.len() == 1 && d.as_bytes()[0].is_ascii_digit() => {
                self.digits.push_str(d);
                if self.digits.len() == CODE_LEN {
                    let outcome = self.check(app, call, ctx).await;
                    self.end(call, outcome);
                } else {
                    call.to_agent(AgentOut::Event(
                        json!({"type": "keypad", "keys": self.digits.len()}),
                    ));
                }
            }
            // A-D are not digits of a code, and say nothing either.
            _ => {}
        }
    }

    async fn check(&mut self, app: &App, call: &Call, ctx: &Context) -> Outcome {
        let (Some(challenge), Ok(customer)) =
            (self.challenge, app.store.customer(call.customer).await)
        else {
            return Outcome::Unavailable;
        };
        // Codes keyed in count against the customer's limit as the widget's do. The limit per
        // address is not applied: the address is the provider's, shared by every call.
        let rule = crate::limits::Rule::VerifyPerVisitor;
        let key = customer.id.0.to_string();
        if app
            .limiter
            .check(rule, &key, app.clock.now())
            .await
            .is_err()
        {
            tracing::info!(target: "deskgate::security", call = %call.id, rule = rule.as_str(), "rate limited");
            return Outcome::RateLimited;
        }
        let code = SecretString::from(self.digits.as_str());
        match app.stepup.check(ctx, &customer, challenge, &code).await {
            Ok(r) => match r.state {
                ChallengeState::Approved => Outcome::Approved,
                ChallengeState::MaxAttempts => Outcome::MaxAttempts,
                _ => Outcome::Wrong {
                    attempts_left: r.attempts_left,
                },
            },
            Err(StepUpError::Locked) => Outcome::Locked,
            Err(StepUpError::NotPending(_) | StepUpError::NotFound) => Outcome::NotPending,
            Err(StepUpError::BadCode) => Outcome::Incomplete,
            Err(e) => {
                tracing::warn!(call = %call.id, error = %e, "a keyed code could not be checked");
                Outcome::Unavailable
            }
        }
    }

    /// The entry is over: the agent is told how, the caller hears it, the mute fades out.
    fn end(&mut self, call: &Call, outcome: Outcome) {
        self.reset();
        self.mute_until = Some(Instant::now() + TAIL);
        call.to_agent(AgentOut::Event(outcome.event()));
        if let Some(t) = outcome.tone() {
            call.to_customer(CustomerOut::Media(t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outcomes_name_no_digits_and_sound_apart() {
        let wrong = Outcome::Wrong { attempts_left: 3 }.event();
        assert_eq!(
            wrong,
            json!({"type": "keypad", "keys": 0, "result": "wrong", "attempts_left": 3})
        );
        let pass = Outcome::Approved.tone().unwrap();
        let fail = Outcome::MaxAttempts.tone().unwrap();
        assert_eq!(pass.len(), 8 * 400);
        assert_eq!(fail.len(), 8 * 450);
        // Zero crossings upwards per second: the frequency.
        let hz = |s: &[i16]| {
            let ups = s.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
            ups as f64 * 8000.0 / s.len() as f64
        };
        assert!((hz(&pass[..1200]) - 1400.0).abs() < 20.0);
        assert!((hz(&fail) - 400.0).abs() < 10.0);
        assert!(
            pass[1200..2000].iter().all(|&x| x == 0),
            "the gap between beeps"
        );
        assert!(Outcome::Cleared.tone().is_none());
    }

    #[test]
    fn an_entry_mutes_the_caller_until_it_ends() {
        let mut k = Keypad::default();
        let loud = vec![1000i16; 160];
        assert_eq!(k.screen(loud.clone()), loud);
        k.mute_until = Some(Instant::now() + KEY_GAP);
        assert!(k.screen(loud.clone()).iter().all(|&x| x == 0));
        k.mute_until = Some(Instant::now() - Duration::from_millis(1));
        assert_eq!(k.screen(loud.clone()), loud);
    }
}
