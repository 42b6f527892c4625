//! Access grants over REST: a supervisor asks for a closed ticket's transcript with a reason
//! and a duration (`POST /api/grants`); a different person with the approver role approves
//! or denies it (`POST /api/grants/{id}/approve|deny`); the requester then reads the
//! transcript through the grant (`GET /api/grants/{id}/transcript`) until it expires or is
//! revoked (`POST /api/grants/{id}/revoke`). The rules are `recorder::grant`; every step,
//! every read and every refusal is audited. Approvers and admins see every grant, requesters
//! their own.

use super::{ApiError, ApiResult, Body, Path, Query, Staff};
use crate::app::App;
use crate::audit::{Action, Context, Event, Outcome};
use crate::auth::{require, Permission};
use crate::clock::Timestamp;
use crate::ids::{GrantId, Seq, TicketId, UserId};
use crate::stepup::StepUpError;
use crate::store::{
    GrantChange, GrantFilter, Message, NewGrant, Note, StoreError, StoredGrant, Ticket,
    TicketStatus, User,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use recorder::grant::{GrantError, ObjectKind, Reason, Status};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateGrant {
    /// `transcript` (a closed ticket's messages; the object is the ticket id) or `recording`
    /// (a finished call recording; the object is the recording id).
    pub kind: String,
    /// The ticket whose transcript is asked for.
    pub object: i64,
    /// Why access is needed: 10-500 characters; shown to the reviewer and audited.
    pub reason: String,
    /// Access asked for once approved; default 60, at most the configured maximum (480).
    pub duration_minutes: Option<u64>,
}

#[derive(Deserialize, utoipa::ToSchema, Default)]
pub struct Review {
    /// A note for the requester and the audit log (at most 500 characters).
    pub note: Option<String>,
    /// The approver's current code from their authenticator app; approving needs it.
    #[schema(value_type = Option<String>)]
    pub otp: Option<SecretString>,
}

/// A request or grant as approvers and its requester see it. `status` already reflects the
/// clock: a request or grant past its time is `expired`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GrantView {
    pub id: GrantId,
    pub kind: String,
    pub object: i64,
    pub requester: UserId,
    pub reason: String,
    pub status: String,
    pub requested_at: Timestamp,
    /// Until when the request may be reviewed.
    pub review_by: Timestamp,
    pub duration_minutes: i64,
    pub reviewer: Option<UserId>,
    pub reviewed_at: Option<Timestamp>,
    pub review_note: Option<String>,
    /// Until when an approved grant opens the object.
    pub expires_at: Option<Timestamp>,
    pub ended_by: Option<UserId>,
    pub ended_at: Option<Timestamp>,
    /// The gateway's clock when this view was made: clients measure the time left and the
    /// request's age against it, not against their own clock.
    pub now: Timestamp,
}

impl GrantView {
    fn new(g: &StoredGrant, now: Timestamp) -> GrantView {
        GrantView {
            id: g.id,
            kind: g.grant.kind.as_str().to_string(),
            object: g.grant.object_id,
            requester: g.requester(),
            reason: g.reason.clone(),
            status: g.grant.status_at(now.0).as_str().to_string(),
            requested_at: Timestamp(g.grant.requested_at),
            review_by: Timestamp(g.grant.review_by),
            duration_minutes: g.grant.duration_ms / 60_000,
            reviewer: g.reviewer,
            reviewed_at: g.reviewed_at,
            review_note: g.review_note.clone(),
            expires_at: g.grant.expires_at.map(Timestamp),
            ended_by: g.ended_by,
            ended_at: g.ended_at,
            now,
        }
    }
}

/// The transcript read through a grant: the ticket with its subject, its messages and its
/// internal notes.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Transcript {
    pub grant: GrantId,
    pub ticket: Ticket,
    pub messages: Vec<Message>,
    /// Until when the grant opens the transcript.
    pub expires_at: Option<Timestamp>,
    /// The gateway's clock when this was read (for the time left).
    pub now: Timestamp,
    pub notes: Vec<Note>,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct TranscriptQuery {
    /// Messages after this sequence number; default 0.
    pub after: Option<i64>,
    /// At most 500; default 500.
    pub limit: Option<i64>,
}

pub(super) fn grant_error(e: GrantError) -> ApiError {
    match e {
        GrantError::Reason | GrantError::Duration { .. } => ApiError::Invalid(e.to_string()),
        GrantError::SelfReview | GrantError::NotRequester => ApiError::Forbidden,
        GrantError::NotPending(_) | GrantError::NotActive(_) => ApiError::Conflict(e.to_string()),
    }
}

fn grant_event(action: Action, g: &StoredGrant, customer: Option<Ticket>) -> Event {
    let mut ev = Event::allowed(action)
        .object("grant", g.id.0)
        .detail(format!("{} {}", g.grant.kind, g.grant.object_id));
    if let Some(t) = customer {
        ev = ev.customer(t.customer.id);
    }
    ev
}

/// The ticket a grant is about (for the customer named in audit entries).
async fn object_ticket(app: &App, g: &StoredGrant) -> Option<Ticket> {
    match g.grant.kind {
        ObjectKind::Transcript => app.store.ticket(TicketId(g.grant.object_id)).await.ok(),
        ObjectKind::Recording => {
            let rec = app.store.recording(g.grant.object_id).await.ok()?;
            app.store.ticket(rec.ticket).await.ok()
        }
    }
}

/// Revokes every pending request and active grant of a user whose role changed or who was
/// deactivated, one audit entry each: access asked for under the old role ends with it.
pub async fn revoke_all_of(
    app: &App,
    ctx: &Context,
    user: UserId,
    why: &str,
) -> Result<usize, StoreError> {
    let now = app.clock.now();
    let mut revoked = 0;
    let grants = app
        .store
        .grants(GrantFilter {
            requester: Some(user),
            limit: 10_000,
            ..Default::default()
        })
        .await?;
    for g in grants {
        if g.grant.check_revoke(now.0).is_err() {
            continue;
        }
        let change = GrantChange {
            from: g.grant.status,
            to: Status::Revoked,
            by: ctx.actor,
            at: now,
            note: Some(why.to_string()),
            expires_at: None,
        };
        match app.store.change_grant(g.id, change).await {
            Ok(changed) => {
                revoked += 1;
                let ticket = object_ticket(app, &changed).await;
                let ev = grant_event(Action::GrantRevoked, &changed, ticket);
                let detail = format!("{}; {why}", ev.detail.clone().unwrap_or_default());
                let _ = app.audit(ctx, ev.detail(detail)).await;
            }
            // Reviewed, expired or revoked meanwhile.
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(revoked)
}

/// Marks the requests and grants the clock has expired, one audit entry each. Runs before
/// every grant operation and on the periodic sweep, so expiry is recorded once whichever
/// comes first.
pub async fn expire_due(app: &App) -> Result<(), StoreError> {
    let now = app.clock.now();
    for g in app.store.due_grants(now).await? {
        let change = GrantChange {
            from: g.grant.status,
            to: Status::Expired,
            by: None,
            at: now,
            note: None,
            expires_at: None,
        };
        match app.store.change_grant(g.id, change).await {
            Ok(expired) => {
                let was = if g.grant.status == Status::Pending {
                    "request not reviewed in time"
                } else {
                    "access period ended"
                };
                let ticket = object_ticket(app, &expired).await;
                let ev = grant_event(Action::GrantExpired, &expired, ticket);
                let detail = format!("{}; {was}", ev.detail.clone().unwrap_or_default());
                let _ = app.audit(&Context::system(), ev.detail(detail)).await;
            }
            // Someone reviewed or revoked it meanwhile.
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A grant the caller may see: their own, or any for approvers and admins.
async fn visible_grant(app: &App, me: &User, id: GrantId) -> ApiResult<StoredGrant> {
    expire_due(app).await?;
    let g = app.store.grant(id).await?;
    if g.requester() == me.id || me.role.can(Permission::ViewAllGrants) {
        Ok(g)
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Approving needs the approver's fresh TOTP code (`otp`), checked like a login's (replay of
/// an accepted step refused, growing delays after failures) but without recovery codes. A
/// wrong or missing code is audited as a failed approval.
async fn approver_fresh_totp(
    app: &App,
    ctx: &Context,
    approver: &User,
    id: GrantId,
    otp: Option<&SecretString>,
) -> ApiResult<()> {
    match app.stepup.fresh_factor(ctx, approver, otp).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let mut ev = Event::new(Action::GrantApproved, Outcome::Failed).object("grant", id.0);
            ev.detail = Some("second factor".into());
            let _ = app.audit(ctx, ev).await;
            Err(match e {
                StepUpError::WrongFactor => ApiError::Refused(
                    StatusCode::UNAUTHORIZED,
                    "second_factor_required",
                    "approving needs a current code from your authenticator app (otp)".into(),
                ),
                other => other.into(),
            })
        }
    }
}

/// Ask for access to a closed ticket's transcript (supervisors).
#[utoipa::path(post, path = "/api/grants", tag = "grants", security(("bearer" = [])),
    request_body = CreateGrant,
    responses((status = 201, body = GrantView), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 409, description = "the ticket is not closed", body = super::ErrorBody)))]
pub async fn create(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Body(req): Body<CreateGrant>,
) -> ApiResult<(StatusCode, Json<GrantView>)> {
    let ctx = ctx.by(&me);
    if require(&me, Permission::RequestGrant).is_err() {
        let ev =
            Event::denied(Action::GrantRequested).detail(format!("{} {}", req.kind, req.object));
        let _ = app.audit(&ctx, ev).await;
        return Err(ApiError::Forbidden);
    }
    let kind: ObjectKind = req.kind.parse().map_err(ApiError::Invalid)?;
    let reason = Reason::parse(&req.reason).map_err(grant_error)?;
    let policy = &app.config.grants;
    let asked = req
        .duration_minutes
        .map(|m| Duration::from_secs(m.saturating_mul(60)));
    let duration = policy.duration(asked).map_err(grant_error)?;
    let (object, ticket) = match kind {
        ObjectKind::Transcript => {
            let ticket = app.store.ticket(TicketId(req.object)).await?;
            if ticket.status != TicketStatus::Closed {
                return Err(ApiError::Conflict(
                    "only a closed ticket's transcript needs a grant".into(),
                ));
            }
            (ticket.id.0, ticket)
        }
        ObjectKind::Recording => {
            let rec = app.store.recording(req.object).await?;
            if rec.state == crate::store::RecordingState::Recording {
                return Err(ApiError::Conflict(
                    "the call is still going on; its recording can be asked for once it ends"
                        .into(),
                ));
            }
            (rec.id, app.store.ticket(rec.ticket).await?)
        }
    };
    let now = app.clock.now();
    let grant = policy.request(kind, object, me.id.0, duration, now.0);
    let stored = app
        .store
        .create_grant(NewGrant {
            grant,
            reason: reason.as_str().to_string(),
        })
        .await?;
    let ev = grant_event(Action::GrantRequested, &stored, Some(ticket));
    let detail = format!(
        "{}; reason={}",
        ev.detail.clone().unwrap_or_default(),
        reason.as_str()
    );
    let _ = app.audit(&ctx, ev.detail(detail)).await;
    Ok((StatusCode::CREATED, Json(GrantView::new(&stored, now))))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// At most 500; default 100.
    pub limit: Option<i64>,
}

/// Requests and grants, newest first: all of them for approvers and admins, one's own for
/// everyone else.
#[utoipa::path(get, path = "/api/grants", tag = "grants", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<GrantView>), (status = 401, body = super::ErrorBody),
        (status = 403, description = "the calling page's origin may not use the staff API", body = super::ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    Staff(me): Staff,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<GrantView>>> {
    expire_due(&app).await?;
    let limit = match q.limit {
        None => 100,
        Some(n @ 1..=500) => n,
        Some(_) => return Err(ApiError::Invalid("limit must be 1-500".into())),
    };
    let requester = (!me.role.can(Permission::ViewAllGrants)).then_some(me.id);
    let grants = app
        .store
        .grants(GrantFilter {
            requester,
            limit,
            ..Default::default()
        })
        .await?;
    let now = app.clock.now();
    Ok(Json(
        grants.iter().map(|g| GrantView::new(g, now)).collect(),
    ))
}

/// The limits a request must keep, so a form can show them before it is sent.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PolicyView {
    /// Access an approved grant gives when the request names no duration.
    pub default_duration_minutes: u64,
    /// The longest access one request may ask for.
    pub max_duration_minutes: u64,
    /// How long a request waits for review before it expires.
    pub pending_ttl_minutes: u64,
    /// Shortest and longest reason, in characters.
    pub reason_min: usize,
    pub reason_max: usize,
}

/// The configured limits of access requests (any staff member).
#[utoipa::path(get, path = "/api/grants/policy", tag = "grants", security(("bearer" = [])),
    responses((status = 200, body = PolicyView), (status = 401, body = super::ErrorBody),
        (status = 403, description = "the calling page's origin may not use the staff API", body = super::ErrorBody)))]
pub async fn policy(State(app): State<App>, Staff(_me): Staff) -> Json<PolicyView> {
    let p = &app.config.grants;
    Json(PolicyView {
        default_duration_minutes: p.default_duration.as_secs() / 60,
        max_duration_minutes: p.max_duration.as_secs() / 60,
        pending_ttl_minutes: p.pending_ttl.as_secs() / 60,
        reason_min: recorder::grant::REASON_MIN,
        reason_max: recorder::grant::REASON_MAX,
    })
}

/// One request or grant.
#[utoipa::path(get, path = "/api/grants/{id}", tag = "grants", security(("bearer" = [])),
    params(("id" = i64, Path, description = "grant id")),
    responses((status = 200, body = GrantView), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn show(
    State(app): State<App>,
    Staff(me): Staff,
    Path(id): Path<i64>,
) -> ApiResult<Json<GrantView>> {
    let g = visible_grant(&app, &me, GrantId(id)).await?;
    Ok(Json(GrantView::new(&g, app.clock.now())))
}

async fn review(
    app: App,
    me: User,
    ctx: Context,
    id: GrantId,
    review: Review,
    approve: bool,
) -> ApiResult<Json<GrantView>> {
    let ctx = ctx.by(&me);
    let action = if approve {
        Action::GrantApproved
    } else {
        Action::GrantDenied
    };
    if require(&me, Permission::ReviewGrant).is_err() {
        let _ = app
            .audit(&ctx, Event::denied(action).object("grant", id.0))
            .await;
        return Err(ApiError::Forbidden);
    }
    let note = match review.note {
        Some(n) if n.chars().count() > 500 || n.chars().any(char::is_control) => {
            return Err(ApiError::Invalid(
                "note must be at most 500 characters, without control characters".into(),
            ))
        }
        other => other
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
    };
    let g = visible_grant(&app, &me, id).await?;
    let now = app.clock.now();
    if let Err(e) = g.grant.check_review(me.id.0, now.0) {
        if e == GrantError::SelfReview {
            let ev = Event::denied(action)
                .object("grant", id.0)
                .detail("own request");
            let _ = app.audit(&ctx, ev).await;
        }
        return Err(grant_error(e));
    }
    if approve {
        approver_fresh_totp(&app, &ctx, &me, id, review.otp.as_ref()).await?;
    }
    let change = GrantChange {
        from: Status::Pending,
        to: if approve {
            Status::Approved
        } else {
            Status::Denied
        },
        by: Some(me.id),
        at: now,
        note,
        expires_at: approve.then(|| Timestamp(g.grant.expiry_if_approved(now.0))),
    };
    let changed = app.store.change_grant(id, change).await?;
    let ticket = object_ticket(&app, &changed).await;
    let _ = app.audit(&ctx, grant_event(action, &changed, ticket)).await;
    Ok(Json(GrantView::new(&changed, now)))
}

/// Approve someone else's pending request (approvers). Access starts now and lasts the
/// requested duration.
#[utoipa::path(post, path = "/api/grants/{id}/approve", tag = "grants", security(("bearer" = [])),
    params(("id" = i64, Path, description = "grant id")), request_body = Review,
    responses((status = 200, body = GrantView), (status = 401, body = super::ErrorBody),
        (status = 403, description = "not an approver, or one's own request", body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 409, description = "not pending (reviewed, expired, revoked)", body = super::ErrorBody),
        (status = 429, description = "retry_later: too many wrong second-factor codes", body = super::ErrorBody)))]
pub async fn approve(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
    Body(req): Body<Review>,
) -> ApiResult<Json<GrantView>> {
    review(app, me, ctx, GrantId(id), req, true).await
}

/// Deny someone else's pending request (approvers).
#[utoipa::path(post, path = "/api/grants/{id}/deny", tag = "grants", security(("bearer" = [])),
    params(("id" = i64, Path, description = "grant id")), request_body = Review,
    responses((status = 200, body = GrantView), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)))]
pub async fn deny(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
    Body(req): Body<Review>,
) -> ApiResult<Json<GrantView>> {
    review(app, me, ctx, GrantId(id), req, false).await
}

/// End a pending request or an active grant at once (approvers and admins).
#[utoipa::path(post, path = "/api/grants/{id}/revoke", tag = "grants", security(("bearer" = [])),
    params(("id" = i64, Path, description = "grant id")), request_body = Review,
    responses((status = 200, body = GrantView), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)))]
pub async fn revoke(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
    Body(req): Body<Review>,
) -> ApiResult<Json<GrantView>> {
    let ctx = ctx.by(&me);
    let id = GrantId(id);
    if require(&me, Permission::RevokeGrant).is_err() {
        let _ = app
            .audit(
                &ctx,
                Event::denied(Action::GrantRevoked).object("grant", id.0),
            )
            .await;
        return Err(ApiError::Forbidden);
    }
    let g = visible_grant(&app, &me, id).await?;
    let now = app.clock.now();
    g.grant.check_revoke(now.0).map_err(grant_error)?;
    let note = req
        .note
        .map(|n| n.chars().take(500).collect::<String>())
        .filter(|n| !n.trim().is_empty());
    let change = GrantChange {
        from: g.grant.status,
        to: Status::Revoked,
        by: Some(me.id),
        at: now,
        note,
        expires_at: None,
    };
    let changed = app.store.change_grant(id, change).await?;
    let ticket = object_ticket(&app, &changed).await;
    let _ = app
        .audit(&ctx, grant_event(Action::GrantRevoked, &changed, ticket))
        .await;
    Ok(Json(GrantView::new(&changed, now)))
}

/// Read the transcript a grant opens (its requester only, while it is active). Every read is
/// audited, and so is every refused one.
#[utoipa::path(get, path = "/api/grants/{id}/transcript", tag = "grants", security(("bearer" = [])),
    params(("id" = i64, Path, description = "grant id"), TranscriptQuery),
    responses((status = 200, body = Transcript), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 409, description = "pending, denied, expired or revoked", body = super::ErrorBody)))]
pub async fn transcript(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
    Query(q): Query<TranscriptQuery>,
) -> ApiResult<Json<Transcript>> {
    let ctx = ctx.by(&me);
    let id = GrantId(id);
    expire_due(&app).await?;
    let g = app.store.grant(id).await?;
    let ticket = app.store.ticket(TicketId(g.grant.object_id)).await?;
    let now = app.clock.now();
    // The requester must still hold a role that may ask for access: one demoted since the
    // approval reads nothing.
    if require(&me, Permission::RequestGrant).is_err() {
        let ev = Event::denied(Action::GrantUsed)
            .customer(ticket.customer.id)
            .object("transcript", ticket.id.0)
            .detail(format!(
                "grant={}; role {} may not read through a grant",
                id.0, me.role
            ));
        let _ = app.audit(&ctx, ev).await;
        return Err(ApiError::Forbidden);
    }
    if let Err(e) = g.grant.check_read(me.id.0, now.0) {
        let ev = Event::denied(Action::GrantUsed)
            .customer(ticket.customer.id)
            .object("transcript", ticket.id.0)
            .detail(format!("grant={}; {e}", id.0));
        let _ = app.audit(&ctx, ev).await;
        return Err(grant_error(e));
    }
    let limit = match q.limit {
        None => 500,
        Some(n @ 1..=500) => n,
        Some(_) => return Err(ApiError::Invalid("limit must be 1-500".into())),
    };
    let after = Seq(q.after.unwrap_or(0).max(0));
    let ev = Event::allowed(Action::GrantUsed)
        .customer(ticket.customer.id)
        .object("transcript", ticket.id.0)
        .detail(format!("grant={}; after={}", id.0, after.0));
    // A read that leaves no trace does not happen.
    app.audit(&ctx, ev)
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let messages = app
        .store
        .messages_after(ticket.conversation, after, limit)
        .await?;
    let notes = app.store.notes(ticket.id).await?;
    Ok(Json(Transcript {
        grant: id,
        ticket,
        messages,
        expires_at: g.grant.expires_at.map(Timestamp),
        now,
        notes,
    }))
}

/// Plays or exports the recording a grant opens, as a WAV streamed while it is decrypted (its
/// requester only, while the grant is active). The file is checked against its manifest first:
/// a cut-off or altered recording is refused (409), not played in part. Every play is audited,
/// and so is every refused one.
#[utoipa::path(get, path = "/api/grants/{id}/recording", tag = "grants", security(("bearer" = [])),
    params(("id" = i64, Path, description = "grant id")),
    responses(
        (status = 200, description = "the recording as a WAV file, streamed", content_type = "audio/wav"),
        (status = 403, description = "not the grant's requester, or a role that may not read through a grant; or the calling page's origin may not use the staff API", body = super::ErrorBody),
        (status = 404, description = "no such grant, or not one for a recording", body = super::ErrorBody),
        (status = 409, description = "pending, denied, expired or revoked; or the recording cannot be opened or fails its integrity check", body = super::ErrorBody)))]
pub async fn recording(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let ctx = ctx.by(&me);
    let id = GrantId(id);
    expire_due(&app).await?;
    let g = app.store.grant(id).await?;
    if g.grant.kind != ObjectKind::Recording {
        return Err(ApiError::NotFound);
    }
    let rec_id = g.grant.object_id;
    let ticket = object_ticket(&app, &g).await.ok_or(ApiError::NotFound)?;
    let now = app.clock.now();
    let denied = |why: String| {
        Event::denied(Action::GrantUsed)
            .customer(ticket.customer.id)
            .object("recording", rec_id)
            .detail(format!("grant={}; {why}", id.0))
    };
    if require(&me, Permission::RequestGrant).is_err() {
        let _ = app
            .audit(
                &ctx,
                denied(format!("role {} may not read through a grant", me.role)),
            )
            .await;
        return Err(ApiError::Forbidden);
    }
    if let Err(e) = g.grant.check_read(me.id.0, now.0) {
        let _ = app.audit(&ctx, denied(e.to_string())).await;
        return Err(grant_error(e));
    }
    let (_, manifest, key) = super::calls::opened(&app, rec_id).await?;
    let (Some(manifest), Some(key)) = (manifest, key) else {
        let _ = app.audit(&ctx, denied("no manifest or key".into())).await;
        return Err(ApiError::Conflict(
            "the recording cannot be opened (never written, or shredded)".into(),
        ));
    };
    let file = crate::voice::recording::path(&crate::voice::recordings_dir(&app.config), rec_id);
    // Checked before anything is sent, so a bad recording is an error, not a partial WAV.
    let checked = {
        let (file, manifest) = (file.clone(), manifest.clone());
        tokio::task::spawn_blocking(move || crate::voice::recording::check(&file, &manifest))
            .await
            .map_err(|_| ApiError::Unavailable)?
    };
    if let Err(e) = checked {
        tracing::warn!(target: "deskgate::security", recording = rec_id, error = %e, "recording fails its check");
        let _ = app.audit(&ctx, denied(format!("integrity: {e}"))).await;
        return Err(ApiError::Conflict(format!(
            "the recording fails its integrity check: {e}"
        )));
    }
    let ev = Event::allowed(Action::GrantUsed)
        .customer(ticket.customer.id)
        .object("recording", rec_id)
        .detail(format!("grant={}; played", id.0));
    // A play that leaves no trace does not happen.
    app.audit(&ctx, ev)
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let result = crate::voice::recording::export(&file, &manifest, &key, |chunk| {
            tx.blocking_send(Ok(chunk)).is_ok()
        });
        if let Err(e) = result {
            tracing::warn!(recording = rec_id, error = %e, "recording export stopped");
            let _ = tx.blocking_send(Err(std::io::Error::other("recording export failed")));
        }
    });
    let body = axum::body::Body::from_stream(tokio_stream_from(rx));
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "audio/wav"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
