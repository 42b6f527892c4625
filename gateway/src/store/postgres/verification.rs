//! The verification state in PostgreSQL: challenges, the daily failure
//! counter, authorised actions, step-up flags, staff TOTP factors and recovery codes.
//!
//! Each rule that races is decided in a transaction that runs alone ([`begin_write`]): a check is one
//! transaction that reads the customer's daily count, counts the attempt
//! with a conditional `UPDATE … RETURNING` and adds a wrong code to the daily count, so
//! concurrent checks can never count past either limit and at most one approves; a TOTP
//! attempt is reserved by one conditional `UPDATE`; a TOTP step or a recovery code is taken by
//! an `UPDATE` whose `WHERE` fails for the second taker.

use super::{begin_write, PgStore};
use crate::clock::Timestamp;
use crate::ids::UserId;
use crate::store::rows::{challenge_from_row, err, factor_from_row, CHALLENGE_COLUMNS};
use crate::store::{StoreError, StoreResult, User};
use async_trait::async_trait;
use sqlx::Row;
use verify::challenge::millis;
use verify::lockout::{customer_locked, day_of, TotpLimits};
use verify::store::{
    AuthorisedAction, Created, NewChallenge, TotpFactor, VerificationStore, VerifyStoreResult,
};
use verify::{Challenge, CheckOutcome, Checked, Rules};

/// One check of a challenge inside the caller's transaction: a right code approves it if it is
/// still pending and unexpired; a wrong one counts an attempt (ending the challenge at the
/// last); either way one conditional update decides.
async fn check_attempt(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: i64,
    right: bool,
    now: i64,
    rules: &Rules,
) -> VerifyStoreResult<CheckOutcome> {
    let max = i64::from(rules.max_attempts);
    if right {
        let until = now + millis(rules.verified_for);
        let approved: Option<i64> = sqlx::query_scalar(
            "UPDATE verification_challenges SET state = 'approved', verified_until = $1, \
             closed_at = $2 \
             WHERE id = $3 AND state = 'pending' AND expires_at > $4 AND attempts < $5 \
             RETURNING verified_until",
        )
        .bind(until)
        .bind(now)
        .bind(id)
        .bind(now)
        .bind(max)
        .fetch_optional(&mut **tx)
        .await
        .map_err(err)?;
        if let Some(verified_until) = approved {
            return Ok(CheckOutcome::Approved { verified_until });
        }
    } else {
        let counted = sqlx::query(
            "UPDATE verification_challenges SET attempts = attempts + 1, \
             state = CASE WHEN attempts + 1 >= $1 THEN 'max_attempts' ELSE 'pending' END, \
             closed_at = CASE WHEN attempts + 1 >= $2 THEN $3 ELSE NULL END \
             WHERE id = $4 AND state = 'pending' AND expires_at > $5 \
             RETURNING attempts, state",
        )
        .bind(max)
        .bind(max)
        .bind(now)
        .bind(id)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await
        .map_err(err)?;
        if let Some(row) = counted {
            let attempts: i64 = row.try_get("attempts").map_err(err)?;
            let state: String = row.try_get("state").map_err(err)?;
            return Ok(if state == "max_attempts" {
                CheckOutcome::MaxAttempts
            } else {
                CheckOutcome::Wrong {
                    attempts_left: u32::try_from(max - attempts).unwrap_or(0),
                }
            });
        }
    }
    // Not pending any more: say what it is, writing down an expiry that has come.
    sqlx::query(
        "UPDATE verification_challenges SET state = 'expired', closed_at = expires_at \
         WHERE id = $1 AND state = 'pending' AND expires_at <= $2",
    )
    .bind(id)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    let row = sqlx::query(&format!(
        "SELECT {CHALLENGE_COLUMNS} FROM verification_challenges WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(&mut **tx)
    .await
    .map_err(err)?;
    Ok(CheckOutcome::NotPending(
        challenge_from_row(&row)?.state_at(now),
    ))
}

/// Adds one wrong code to the customer's count for `day`, in a check's transaction or alone;
/// the new count.
async fn add_failure<'e>(
    on: impl sqlx::Executor<'e, Database = sqlx::Postgres>,
    customer: i64,
    day: i64,
) -> VerifyStoreResult<u32> {
    let n: i64 = sqlx::query_scalar(
        "INSERT INTO verification_failures (customer_id, day, failures) \
         VALUES ($1, $2, 1) ON CONFLICT (customer_id, day) \
         DO UPDATE SET failures = verification_failures.failures + 1 RETURNING failures",
    )
    .bind(customer)
    .bind(day)
    .fetch_one(on)
    .await
    .map_err(err)?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

#[async_trait]
impl VerificationStore for PgStore {
    async fn create_challenge(&self, n: NewChallenge) -> VerifyStoreResult<Created> {
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        let canceled: Vec<i64> = sqlx::query_scalar(
            "UPDATE verification_challenges SET state = 'canceled', closed_at = $1 \
             WHERE ticket_id = $2 AND action = $3 AND state = 'pending' RETURNING id",
        )
        .bind(n.now)
        .bind(n.ticket)
        .bind(&n.action)
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        let row = sqlx::query(&format!(
            "INSERT INTO verification_challenges (ticket_id, customer_id, agent_id, action, state, \
             destination, salt, code_hash, created_at, sent_at, expires_at) \
             VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10) RETURNING {CHALLENGE_COLUMNS}"
        ))
        .bind(n.ticket)
        .bind(n.customer)
        .bind(n.agent)
        .bind(&n.action)
        .bind(&n.destination)
        .bind(&n.salt)
        .bind(&n.code_hash)
        .bind(n.now)
        .bind(n.now)
        .bind(n.expires_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        let challenge = challenge_from_row(&row)?;
        tx.commit().await.map_err(err)?;
        Ok(Created {
            challenge,
            canceled,
        })
    }

    async fn challenge(&self, id: i64) -> VerifyStoreResult<Challenge> {
        let row = sqlx::query(&format!(
            "SELECT {CHALLENGE_COLUMNS} FROM verification_challenges WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .map_err(err)?;
        challenge_from_row(&row)
    }

    async fn pending_challenges(&self, ticket: i64, now: i64) -> VerifyStoreResult<Vec<Challenge>> {
        let rows = sqlx::query(&format!(
            "SELECT {CHALLENGE_COLUMNS} FROM verification_challenges \
             WHERE ticket_id = $1 AND state = 'pending' AND expires_at > $2 ORDER BY id DESC"
        ))
        .bind(ticket)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(challenge_from_row).collect()
    }

    async fn latest_challenges(&self, ticket: i64) -> VerifyStoreResult<Vec<Challenge>> {
        let rows = sqlx::query(&format!(
            "SELECT {CHALLENGE_COLUMNS} FROM verification_challenges WHERE id IN \
             (SELECT MAX(id) FROM verification_challenges WHERE ticket_id = $1 GROUP BY action) \
             ORDER BY action"
        ))
        .bind(ticket)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(challenge_from_row).collect()
    }

    async fn resend(
        &self,
        id: i64,
        salt: &[u8],
        code_hash: &[u8],
        now: i64,
        rules: &Rules,
    ) -> VerifyStoreResult<Option<Challenge>> {
        let row = sqlx::query(&format!(
            "UPDATE verification_challenges SET salt = $1, code_hash = $2, resends = resends + 1, \
             sent_at = $3, expires_at = $4 \
             WHERE id = $5 AND state = 'pending' AND expires_at > $6 AND resends < $7 AND sent_at <= $8 \
             RETURNING {CHALLENGE_COLUMNS}"
        ))
        .bind(salt)
        .bind(code_hash)
        .bind(now)
        .bind(now + millis(rules.code_ttl))
        .bind(id)
        .bind(now)
        .bind(i64::from(rules.max_resends))
        .bind(now - millis(rules.resend_cooldown))
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(challenge_from_row).transpose()
    }

    async fn check(
        &self,
        id: i64,
        customer: i64,
        right: bool,
        now: i64,
        rules: &Rules,
    ) -> VerifyStoreResult<Checked> {
        let day = day_of(now);
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        // The daily cap first, in the same transaction that counts: checks of several
        // challenges of one customer can never pass it together.
        let today: i64 = sqlx::query_scalar(
            "SELECT COALESCE((SELECT failures FROM verification_failures \
             WHERE customer_id = $1 AND day = $2), 0)",
        )
        .bind(customer)
        .bind(day)
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        let failures_today = u32::try_from(today).unwrap_or(u32::MAX);
        if customer_locked(failures_today, rules.daily_failure_cap) {
            tx.rollback().await.map_err(err)?;
            return Ok(Checked {
                outcome: CheckOutcome::Locked,
                failures_today,
            });
        }
        let outcome = check_attempt(&mut tx, id, right, now, rules).await?;
        let failures_today = match outcome {
            CheckOutcome::Wrong { .. } | CheckOutcome::MaxAttempts => {
                add_failure(&mut *tx, customer, day).await?
            }
            _ => failures_today,
        };
        tx.commit().await.map_err(err)?;
        Ok(Checked {
            outcome,
            failures_today,
        })
    }

    async fn live_verification(
        &self,
        ticket: i64,
        action: &str,
        now: i64,
    ) -> VerifyStoreResult<Option<Challenge>> {
        let row = sqlx::query(&format!(
            "SELECT {CHALLENGE_COLUMNS} FROM verification_challenges \
             WHERE ticket_id = $1 AND action = $2 AND state = 'approved' AND verified_until > $3 \
             ORDER BY id DESC LIMIT 1"
        ))
        .bind(ticket)
        .bind(action)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(challenge_from_row).transpose()
    }

    async fn record_action(
        &self,
        ticket: i64,
        action: &str,
        agent: i64,
        challenge: i64,
        now: i64,
    ) -> VerifyStoreResult<AuthorisedAction> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO verification_actions (ticket_id, action, agent_id, challenge_id, at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(ticket)
        .bind(action)
        .bind(agent)
        .bind(challenge)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(err)?;
        Ok(AuthorisedAction {
            id,
            ticket,
            action: action.to_string(),
            agent,
            challenge,
            at: now,
        })
    }

    async fn set_customer_language(
        &self,
        customer: i64,
        language: &str,
        now: i64,
    ) -> VerifyStoreResult<()> {
        sqlx::query(
            "INSERT INTO verification_languages (customer_id, language, updated_at) \
             VALUES ($1, $2, $3) ON CONFLICT (customer_id) DO UPDATE SET \
             language = excluded.language, updated_at = excluded.updated_at",
        )
        .bind(customer)
        .bind(language)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn customer_language(&self, customer: i64) -> VerifyStoreResult<Option<String>> {
        sqlx::query_scalar("SELECT language FROM verification_languages WHERE customer_id = $1")
            .bind(customer)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)
    }

    async fn customer_failures(&self, customer: i64, day: i64) -> VerifyStoreResult<u32> {
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT failures FROM verification_failures WHERE customer_id = $1 AND day = $2",
        )
        .bind(customer)
        .bind(day)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        Ok(u32::try_from(n.unwrap_or(0)).unwrap_or(u32::MAX))
    }

    async fn add_customer_failure(&self, customer: i64, day: i64) -> VerifyStoreResult<u32> {
        add_failure(&self.pool, customer, day).await
    }

    async fn max_challenge_id(&self) -> VerifyStoreResult<i64> {
        let n: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM verification_challenges")
            .fetch_one(&self.pool)
            .await
            .map_err(err)?;
        Ok(n.unwrap_or(0))
    }

    async fn record_challenge(&self, c: &Challenge, closed_at: i64) -> VerifyStoreResult<()> {
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        sqlx::query(&format!(
            "INSERT INTO verification_challenges ({CHALLENGE_COLUMNS}, closed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, \
             attempts = excluded.attempts, resends = excluded.resends, \
             verified_until = excluded.verified_until, closed_at = excluded.closed_at"
        ))
        .bind(c.id)
        .bind(c.ticket)
        .bind(c.customer)
        .bind(c.agent)
        .bind(&c.action)
        .bind(c.state.as_str())
        .bind(i64::from(c.attempts))
        .bind(i64::from(c.resends))
        .bind(&c.destination)
        .bind(&c.salt)
        .bind(&c.code_hash)
        .bind(c.created_at)
        .bind(c.sent_at)
        .bind(c.expires_at)
        .bind(c.verified_until)
        .bind(closed_at)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        // An id given elsewhere does not move the identity; a challenge this store numbers
        // later must still come after it.
        sqlx::query(
            "SELECT setval(pg_get_serial_sequence('verification_challenges', 'id'), \
             (SELECT MAX(id) FROM verification_challenges))",
        )
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(())
    }

    async fn totp_factor(&self, user: i64) -> VerifyStoreResult<Option<TotpFactor>> {
        let row = sqlx::query(
            "SELECT user_id, sealed_seed, confirmed, last_step, failures, last_failure_at \
             FROM staff_totp WHERE user_id = $1",
        )
        .bind(user)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(factor_from_row).transpose()
    }

    async fn begin_totp(&self, user: i64, sealed_seed: &[u8], now: i64) -> VerifyStoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO staff_totp (user_id, sealed_seed, confirmed, created_at) VALUES ($1, $2, FALSE, $3) \
             ON CONFLICT (user_id) DO UPDATE SET sealed_seed = excluded.sealed_seed, \
             created_at = excluded.created_at, last_step = NULL, failures = 0, \
             last_failure_at = NULL WHERE NOT staff_totp.confirmed",
        )
        .bind(user)
        .bind(sealed_seed)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn accept_totp_step(&self, user: i64, step: i64, _now: i64) -> VerifyStoreResult<bool> {
        let done = sqlx::query(
            "UPDATE staff_totp SET last_step = $1, confirmed = TRUE, failures = 0, \
             last_failure_at = NULL WHERE user_id = $2 AND (last_step IS NULL OR last_step < $3)",
        )
        .bind(step)
        .bind(user)
        .bind(step)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn reserve_totp_attempt(
        &self,
        user: i64,
        now: i64,
        limits: &TotpLimits,
    ) -> VerifyStoreResult<Option<TotpFactor>> {
        // The delay of `TotpLimits::delay`, in SQL: none below `free_failures`, then
        // `first_delay` doubled per further failure, at most `max_delay`.
        let row = sqlx::query(
            "UPDATE staff_totp SET failures = failures + 1, last_failure_at = $1 \
             WHERE user_id = $2 AND failures < $3 AND (last_failure_at IS NULL OR failures < $4 \
               OR last_failure_at + LEAST($5, $6 << LEAST(failures - $7, $8)::INTEGER) <= $9) \
             RETURNING user_id, sealed_seed, confirmed, last_step, failures, last_failure_at",
        )
        .bind(now)
        .bind(user)
        .bind(i64::from(limits.cap))
        .bind(i64::from(limits.free_failures))
        .bind(millis(limits.max_delay))
        .bind(millis(limits.first_delay))
        .bind(i64::from(limits.free_failures))
        .bind(i64::from(verify::lockout::MAX_DOUBLINGS))
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(factor_from_row).transpose()
    }

    async fn delete_totp(&self, user: i64) -> VerifyStoreResult<bool> {
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        let done = sqlx::query("DELETE FROM staff_totp WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        sqlx::query("DELETE FROM staff_recovery_codes WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_recovery_codes(
        &self,
        user: i64,
        hashes: &[[u8; 32]],
        now: i64,
    ) -> VerifyStoreResult<()> {
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        sqlx::query("DELETE FROM staff_recovery_codes WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        for h in hashes {
            sqlx::query(
                "INSERT INTO staff_recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)",
            )
            .bind(user)
            .bind(&h[..])
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }

    async fn use_recovery_code(&self, user: i64, hash: &[u8], now: i64) -> VerifyStoreResult<bool> {
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        let done = sqlx::query(
            "UPDATE staff_recovery_codes SET used_at = $1 \
             WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(user)
        .bind(hash)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        let used = done.rows_affected() == 1;
        if used {
            sqlx::query(
                "UPDATE staff_totp SET failures = 0, last_failure_at = NULL WHERE user_id = $1",
            )
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(used)
    }

    async fn recovery_codes_left(&self, user: i64) -> VerifyStoreResult<u32> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM staff_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user)
        .fetch_one(&self.pool)
        .await
        .map_err(err)?;
        Ok(u32::try_from(n).unwrap_or(0))
    }
}

// The gateway-side methods of the `Store` trait's verification section (the risk-phrase flag,
// sealed, is in vault.rs).

pub(super) async fn create_enrolment_session(
    s: &PgStore,
    token_hash: &[u8],
    user: UserId,
    now: Timestamp,
    expires: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, enrolment_only) \
         VALUES ($1, $2, $3, $4, TRUE)",
    )
    .bind(token_hash)
    .bind(user.0)
    .bind(now.0)
    .bind(expires.0)
    .execute(&s.pool)
    .await?;
    Ok(())
}

pub(super) async fn enrolling_user(
    s: &PgStore,
    token_hash: &[u8],
    now: Timestamp,
) -> StoreResult<User> {
    let row = sqlx::query(
        "SELECT u.id, u.username, u.name, u.role, u.capacity, u.active, u.created_at \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.active",
    )
    .bind(token_hash)
    .bind(now.0)
    .fetch_optional(&s.pool)
    .await?
    .ok_or(StoreError::NotFound)?;
    super::user_from_row(&row)
}
