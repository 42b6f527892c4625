//! Calls and their recordings in PostgreSQL (migration 0010): a ticket's kind, and one row per
//! recording with its sealed manifest; the audio lives in sealed files beside the database.

use super::*;

impl PgStore {
    pub(super) async fn pg_mark_call(&self, ticket: TicketId) -> StoreResult<()> {
        let done = sqlx::query("UPDATE tickets SET kind = 'call' WHERE id = $1")
            .bind(ticket.0)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub(super) async fn pg_create_recording(
        &self,
        ticket: TicketId,
        call_id: &str,
        rate: u32,
        now: Timestamp,
    ) -> StoreResult<(i64, Arc<recorder::DataKey>)> {
        // Running alone makes the check and the insert one step across nodes: a call id seen
        // twice is a conflict, never a constraint error.
        let mut tx = begin_write(&self.pool).await?;
        let seen: Option<i64> = sqlx::query_scalar("SELECT id FROM recordings WHERE call_id = $1")
            .bind(call_id)
            .fetch_optional(&mut *tx)
            .await?;
        if seen.is_some() {
            return Err(StoreError::Conflict("this call is recorded already"));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO recordings (ticket_id, call_id, rate, channels, state, started_at) \
             VALUES ($1, $2, $3, 2, 'recording', $4) RETURNING id",
        )
        .bind(ticket.0)
        .bind(call_id)
        .bind(i64::from(rate))
        .bind(now.0)
        .fetch_one(&mut *tx)
        .await?;
        let key = vault::create_key(&self.vault, &mut tx, &KeyOwner::recording(id), now).await?;
        tx.commit().await?;
        Ok((id, key))
    }

    pub(super) async fn pg_update_recording(
        &self,
        id: i64,
        manifest: &[u8],
        segments: i64,
        frames: i64,
        state: RecordingState,
        ended: Option<Timestamp>,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE recordings SET manifest = $1, segments = $2, frames = $3, state = $4, \
             ended_at = COALESCE($5, ended_at) WHERE id = $6 AND state = 'recording'",
        )
        .bind(manifest)
        .bind(segments)
        .bind(frames)
        .bind(state.as_str())
        .bind(ended.map(|t| t.0))
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict("the recording is not being written"));
        }
        Ok(())
    }

    pub(super) async fn pg_recording(&self, id: i64) -> StoreResult<StoredRecording> {
        let row = sqlx::query(&format!("{RECORDING_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        recording_from_row(&row)
    }

    pub(super) async fn pg_call_recorded(&self, call_id: &str) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recordings WHERE call_id = $1")
            .bind(call_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    pub(super) async fn pg_ticket_recordings(
        &self,
        ticket: TicketId,
    ) -> StoreResult<Vec<StoredRecording>> {
        let rows = sqlx::query(&format!(
            "{RECORDING_SELECT} WHERE ticket_id = $1 ORDER BY id"
        ))
        .bind(ticket.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(recording_from_row).collect()
    }
}
