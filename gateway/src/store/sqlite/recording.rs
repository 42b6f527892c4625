//! Calls and their recordings in SQLite (migration 0010): a ticket's kind, and one row per
//! recording with its sealed manifest; the audio lives in sealed files beside the database.

use super::*;

impl SqliteStore {
    pub(super) async fn sqlite_mark_call(&self, ticket: TicketId) -> StoreResult<()> {
        let done = sqlx::query("UPDATE tickets SET kind = 'call' WHERE id = ?")
            .bind(ticket.0)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub(super) async fn sqlite_create_recording(
        &self,
        ticket: TicketId,
        call_id: &str,
        rate: u32,
        now: Timestamp,
    ) -> StoreResult<(i64, Arc<recorder::DataKey>)> {
        let mut tx = self.writer.begin().await?;
        let seen: Option<i64> = sqlx::query_scalar("SELECT id FROM recordings WHERE call_id = ?")
            .bind(call_id)
            .fetch_optional(&mut *tx)
            .await?;
        if seen.is_some() {
            return Err(StoreError::Conflict("this call is recorded already"));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO recordings (ticket_id, call_id, rate, channels, state, started_at) \
             VALUES (?, ?, ?, 2, 'recording', ?) RETURNING id",
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

    pub(super) async fn sqlite_update_recording(
        &self,
        id: i64,
        manifest: &[u8],
        segments: i64,
        frames: i64,
        state: RecordingState,
        ended: Option<Timestamp>,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE recordings SET manifest = ?, segments = ?, frames = ?, state = ?, \
             ended_at = COALESCE(?, ended_at) WHERE id = ? AND state = 'recording'",
        )
        .bind(manifest)
        .bind(segments)
        .bind(frames)
        .bind(state.as_str())
        .bind(ended.map(|t| t.0))
        .bind(id)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict("the recording is not being written"));
        }
        Ok(())
    }

    pub(super) async fn sqlite_recording(&self, id: i64) -> StoreResult<StoredRecording> {
        let row = sqlx::query(&format!("{RECORDING_SELECT} WHERE id = ?"))
            .bind(id)
            .fetch_one(&self.reader)
            .await?;
        recording_from_row(&row)
    }

    pub(super) async fn sqlite_call_recorded(&self, call_id: &str) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recordings WHERE call_id = ?")
            .bind(call_id)
            .fetch_one(&self.reader)
            .await?;
        Ok(n > 0)
    }

    pub(super) async fn sqlite_ticket_recordings(
        &self,
        ticket: TicketId,
    ) -> StoreResult<Vec<StoredRecording>> {
        let rows = sqlx::query(&format!(
            "{RECORDING_SELECT} WHERE ticket_id = ? ORDER BY id"
        ))
        .bind(ticket.0)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(recording_from_row).collect()
    }
}
