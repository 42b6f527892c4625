//! The staff second factor: TOTP enrolment and confirmation, the check at login (with replay
//! refusal, growing delays and the failure cap), recovery codes, and an admin's reset.

use super::security::{Event as SecEvent, Kind};
use super::{seal, StepUp, StepUpError, StepUpResult};
use crate::audit::Context;
use crate::store::User;
use secrecy::{ExposeSecret, SecretString};
use verify::lockout::{TotpGate, TotpLimits};
use verify::recovery;
use verify::store::TotpFactor;
use verify::totp::{self, Seed};

/// What login needs beyond the password.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginFactor {
    /// No second factor enrolled and none required.
    NotNeeded,
    /// The code given was right.
    Passed,
    /// The role requires a second factor and none is enrolled: the login may only enrol one.
    EnrolmentRequired,
}

/// A started enrolment, shown once.
pub struct Started {
    pub enrolment: totp::Enrolment,
}

impl StepUp {
    fn unix_secs(&self) -> u64 {
        u64::try_from(self.clock.now().0 / 1000).unwrap_or(0)
    }

    fn sec(&self, kind: Kind, user: &User) -> SecEvent<'static> {
        let mut e = SecEvent::new(kind);
        e.actor = Some(user.id);
        e
    }

    /// Starts (or restarts) a TOTP enrolment; refused while a confirmed factor exists.
    pub async fn begin_enrolment(&self, user: &User) -> StepUpResult<Started> {
        let seed = Seed::generate();
        let sealed = seal::seal(self.store.as_ref(), user.id, &seed, self.clock.now())
            .await
            .map_err(|e| StepUpError::Unavailable(e.to_string()))?;
        if !self
            .vs()
            .begin_totp(user.id.0, &sealed, self.clock.now().0)
            .await?
        {
            return Err(StepUpError::Conflict(
                "a second factor is enrolled already; disable it first",
            ));
        }
        let enrolment = totp::enrolment(&seed, &self.config.company, &user.username)
            .map_err(|e| StepUpError::Unavailable(e.to_string()))?;
        Ok(Started { enrolment })
    }

    /// Confirms an enrolment with the first code; returns a fresh set of recovery codes.
    pub async fn confirm_enrolment(
        &self,
        from: &Context,
        user: &User,
        code: &SecretString,
    ) -> StepUpResult<Vec<SecretString>> {
        let factor = self
            .vs()
            .totp_factor(user.id.0)
            .await?
            .ok_or(StepUpError::Conflict("no enrolment started"))?;
        if factor.confirmed {
            return Err(StepUpError::Conflict(
                "the second factor is confirmed already",
            ));
        }
        self.check_totp(from, user, code, false).await?;
        let codes = self.issue_recovery_codes(user).await?;
        self.record(from, &self.sec(Kind::MfaEnrolled, user)).await;
        Ok(codes)
    }

    async fn issue_recovery_codes(&self, user: &User) -> StepUpResult<Vec<SecretString>> {
        let codes = recovery::generate();
        let hashes = recovery::hash_all(self.keys.code(), user.id.0, &codes);
        self.vs()
            .put_recovery_codes(user.id.0, &hashes, self.clock.now().0)
            .await?;
        Ok(codes)
    }

    /// New recovery codes (the old ones stop working), after a current code.
    pub async fn renew_recovery_codes(
        &self,
        from: &Context,
        user: &User,
        code: &SecretString,
    ) -> StepUpResult<Vec<SecretString>> {
        self.check_totp(from, user, code, true).await?;
        self.issue_recovery_codes(user).await
    }

    /// Turns the user's own second factor off, after a current code; refused for roles that
    /// must have one.
    pub async fn disable(
        &self,
        from: &Context,
        user: &User,
        code: &SecretString,
    ) -> StepUpResult<()> {
        if self.config.requires_mfa(user.role) {
            return Err(StepUpError::Forbidden);
        }
        self.check_totp(from, user, code, true).await?;
        self.vs().delete_totp(user.id.0).await?;
        self.record(from, &self.sec(Kind::MfaDisabled, user)).await;
        Ok(())
    }

    /// An admin removes a user's second factor (a lost device without recovery codes). The
    /// user's sessions end; their next login enrols anew.
    pub async fn admin_reset(
        &self,
        from: &Context,
        admin: &User,
        target: &User,
    ) -> StepUpResult<bool> {
        if !admin.role.manages_users() {
            return Err(StepUpError::Forbidden);
        }
        let removed = self.vs().delete_totp(target.id.0).await?;
        self.store.delete_user_sessions(target.id).await?;
        let mut e = self.sec(Kind::MfaReset, admin);
        e.subject = Some(target.id);
        self.record(from, &e).await;
        Ok(removed)
    }

    /// A fresh code for a decision that must be the approver's own (approving access to a
    /// closed transcript): needed when the user's role requires a second factor or the user
    /// has one. Recovery codes do not count: they are for getting back in, not for approving.
    pub async fn fresh_factor(
        &self,
        from: &Context,
        user: &User,
        code: Option<&SecretString>,
    ) -> StepUpResult<()> {
        let enrolled = self
            .vs()
            .totp_factor(user.id.0)
            .await?
            .is_some_and(|f| f.confirmed);
        if !enrolled && !self.config.requires_mfa(user.role) {
            return Ok(());
        }
        if !enrolled {
            return Err(StepUpError::Forbidden);
        }
        let Some(code) = code else {
            return Err(StepUpError::WrongFactor);
        };
        self.check_totp(from, user, code, false).await
    }

    /// Whether the user has a confirmed second factor, and how many recovery codes are left.
    pub async fn factor_status(&self, user: &User) -> StepUpResult<(bool, u32)> {
        let confirmed = self
            .vs()
            .totp_factor(user.id.0)
            .await?
            .is_some_and(|f| f.confirmed);
        let left = self.vs().recovery_codes_left(user.id.0).await?;
        Ok((confirmed, left))
    }

    /// The second factor at login, after the password was right.
    pub async fn login_factor(
        &self,
        from: &Context,
        user: &User,
        code: Option<&SecretString>,
    ) -> StepUpResult<LoginFactor> {
        let factor = self.vs().totp_factor(user.id.0).await?;
        let enrolled = factor.as_ref().is_some_and(|f| f.confirmed);
        if !enrolled {
            return Ok(if self.config.requires_mfa(user.role) {
                LoginFactor::EnrolmentRequired
            } else {
                LoginFactor::NotNeeded
            });
        }
        let Some(code) = code else {
            return Err(StepUpError::FactorRequired);
        };
        self.check_totp(from, user, code, true).await?;
        Ok(LoginFactor::Passed)
    }

    /// Checks a TOTP code (or, when `allow_recovery`, a recovery code) of the user. The attempt
    /// is first reserved in the store (counted as a failure, refused past the cap or within the
    /// delay), so parallel attempts are checked one reservation each; a right code clears the
    /// count. A code of the last accepted step or an earlier one is refused.
    async fn check_totp(
        &self,
        from: &Context,
        user: &User,
        code: &SecretString,
        allow_recovery: bool,
    ) -> StepUpResult<()> {
        let now = self.clock.now().0;
        let limits = TotpLimits::default();
        let Some(factor) = self
            .vs()
            .reserve_totp_attempt(user.id.0, now, &limits)
            .await?
        else {
            return self.attempt_refused(from, user, now, &limits).await;
        };
        let typed = code.expose_secret();
        if allow_recovery && factor.confirmed && recovery::looks_like(typed) {
            let hash = recovery::hash(self.keys.code(), user.id.0, typed);
            if self.vs().use_recovery_code(user.id.0, &hash, now).await? {
                self.record(from, &self.sec(Kind::MfaRecoveryUsed, user))
                    .await;
                return Ok(());
            }
            return self
                .totp_failed(from, user, &factor, &limits, Kind::MfaFailed)
                .await;
        }
        let seed = seal::open(
            self.store.as_ref(),
            &self.keys,
            user.id,
            &factor.sealed_seed,
        )
        .await
        .map_err(|e| StepUpError::Unavailable(e.to_string()))?;
        let step = totp::matching_step(&seed, typed, self.unix_secs(), factor.last_step)
            .unwrap_or_default();
        let Some(step) = step else {
            // Either wrong, or a code of a step already used: a replay looks the same.
            let replay = factor.last_step.is_some()
                && totp::matching_step(&seed, typed, self.unix_secs(), None)
                    .ok()
                    .flatten()
                    .is_some();
            let kind = if replay {
                Kind::MfaReplay
            } else {
                Kind::MfaFailed
            };
            return self.totp_failed(from, user, &factor, &limits, kind).await;
        };
        if !self.vs().accept_totp_step(user.id.0, step, now).await? {
            // A concurrent login took this step first.
            return self
                .totp_failed(from, user, &factor, &limits, Kind::MfaReplay)
                .await;
        }
        self.record(from, &self.sec(Kind::MfaPassed, user)).await;
        Ok(())
    }

    /// No attempt could be reserved: say why (locked, or how long to wait). Nothing was
    /// checked, so nothing more is counted.
    async fn attempt_refused(
        &self,
        from: &Context,
        user: &User,
        now: i64,
        limits: &TotpLimits,
    ) -> StepUpResult<()> {
        let Some(factor) = self.vs().totp_factor(user.id.0).await? else {
            return Err(StepUpError::WrongFactor);
        };
        match limits.gate(factor.failures, factor.last_failure_at, now) {
            TotpGate::Locked => {
                self.record(from, &self.sec(Kind::MfaLocked, user)).await;
                Err(StepUpError::WrongFactor)
            }
            TotpGate::Wait(ms) => Err(StepUpError::RetryLater((ms + 999) / 1000)),
            // Another attempt changed the count between the two reads.
            TotpGate::Open => Err(StepUpError::RetryLater(1)),
        }
    }

    /// The reserved attempt was wrong: it is counted already; record it.
    async fn totp_failed(
        &self,
        from: &Context,
        user: &User,
        factor: &TotpFactor,
        limits: &TotpLimits,
        kind: Kind,
    ) -> StepUpResult<()> {
        let mut e = self.sec(kind, user);
        if factor.failures >= limits.cap {
            e.detail = Some("failure cap reached");
        }
        self.record(from, &e).await;
        Err(StepUpError::WrongFactor)
    }
}
