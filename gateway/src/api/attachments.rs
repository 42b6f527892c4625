//! Attachments over REST. A customer uploads with their visitor token
//! (`POST /api/visitor/attachments`), an agent to a ticket assigned to them
//! (`POST /api/tickets/{id}/attachments`); the raw body is the file, `Content-Type` its type and
//! `X-File-Name` its name (percent-encoded UTF-8). The file becomes a message of the
//! conversation that carries it, so both sides see it live, on resume and in the history.
//!
//! `GET /api/attachments/{id}` serves it to the customer of its conversation and to staff who
//! may read the ticket (a closed ticket's files only through a grant:
//! `GET /api/grants/{grant}/attachments/{id}`). It is opened one STREAM segment at a time; the
//! first and last segments are checked before the answer starts, so a cut or altered file is
//! refused with an error, and a later segment that fails to open aborts the response (its
//! `Content-Length` is then never reached). Every staff read, and every refusal, is audited.

use super::{bearer, ApiError, ApiResult, Path, Staff};
use crate::app::App;
use crate::attachment::{AttachmentError, Upload};
use crate::audit::{Action, Context, Event};
use crate::auth::{require, token, Permission};
use crate::desk::{DeskError, Sent};
use crate::ids::{AttachmentId, GrantId, TicketId};
use crate::origin::RequestOrigin;
use crate::protocol::{blocked_message, ClientId};
use crate::store::{Customer, Message, StoreError, StoredAttachment, Ticket, TicketStatus};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_MAX_AGE, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH,
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, ORIGIN, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use recorder::stream::{StreamOpener, HEADER_LEN, TAG_LEN};
use recorder::{RecordId, RecordKind};
use serde::Serialize;
use std::sync::Arc;

/// The header that names the uploaded file (percent-encoded UTF-8, as `encodeURIComponent`).
pub const FILE_NAME_HEADER: &str = "x-file-name";
/// The sender's id for the upload, so a retried upload is stored once.
pub const CLIENT_ID_HEADER: &str = "x-client-id";

/// The answer to an upload: the message that carries the file.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    pub ticket: TicketId,
    /// The message as stored; its `attachment` describes the file.
    pub message: Message,
    /// The same client id was used before: this is the message stored then.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Refused(status, code, message.into())
}

impl From<AttachmentError> for ApiError {
    fn from(e: AttachmentError) -> Self {
        let message = e.to_string();
        match e {
            AttachmentError::TooLarge { .. } => {
                refused(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
            }
            AttachmentError::Empty => ApiError::Invalid(message),
            AttachmentError::Unsupported(_) => refused(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_type",
                message,
            ),
            AttachmentError::Mismatch(_) => {
                refused(StatusCode::UNPROCESSABLE_ENTITY, "type_mismatch", message)
            }
        }
    }
}

/// `%XX` sequences decoded; what is not valid UTF-8 after that is replaced, not refused (the
/// name is cleaned anyway).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the upload: the size limit first from `Content-Length`, then while reading, into a
/// buffer that is wiped when dropped; checked into an [`Upload`].
async fn read_upload(app: &App, headers: &HeaderMap, body: Body) -> ApiResult<(Upload, ClientId)> {
    let max = app.config.attachment_max_bytes;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(AttachmentError::TooLarge { max }.into());
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // An unsupported type is refused before the body is read.
    crate::attachment::allowed_type(content_type)?;
    let name = headers
        .get(FILE_NAME_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    let client_id = match headers.get(CLIENT_ID_HEADER) {
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| ApiError::Invalid("x-client-id must be text".into()))?;
            ClientId::parse(s.to_string()).map_err(|e| ApiError::Invalid(e.into()))?
        }
        None => ClientId::parse(format!("upload-{}", token::random_string(12)))
            .map_err(|e| ApiError::Invalid(e.into()))?,
    };
    let cap = declared.map_or(64 * 1024, |n| n as usize).min(max);
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(cap));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::Invalid("the upload was interrupted".into()))?;
        if bytes.len() + chunk.len() > max {
            return Err(AttachmentError::TooLarge { max }.into());
        }
        if bytes.len() + chunk.len() > bytes.capacity() {
            // Grow into a new buffer so the old one is wiped, not left behind by a realloc.
            let mut bigger = zeroize::Zeroizing::new(Vec::with_capacity(
                (bytes.capacity() * 2)
                    .max(bytes.len() + chunk.len())
                    .min(max),
            ));
            bigger.extend_from_slice(&bytes);
            bytes = bigger;
        }
        bytes.extend_from_slice(&chunk);
    }
    let upload = Upload::check(&name, content_type, bytes, max)?;
    Ok((upload, client_id))
}

/// The answer to an upload the desk stored, or withheld.
fn uploaded(sent: Sent) -> ApiResult<(StatusCode, Json<Uploaded>)> {
    if sent.blocked() {
        return Err(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "blocked",
            blocked_message(&sent.findings),
        ));
    }
    let status = if sent.appended.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(Uploaded {
            ticket: sent.appended.ticket,
            message: sent.appended.message,
            duplicate: sent.appended.duplicate,
        }),
    ))
}

/// The customer behind a visitor token.
async fn visitor(app: &App, headers: &HeaderMap) -> ApiResult<Customer> {
    let token = bearer(headers).ok_or(ApiError::Unauthenticated)?;
    let digest = token::digest(token);
    let customer = match app.store.visitor_customer(&digest, app.clock.now()).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => return Err(ApiError::Unauthenticated),
        Err(e) => return Err(e.into()),
    };
    // A page that may not embed the customer's site may not act for them either.
    if let Some(site) = app.sites.get(&customer.site) {
        if RequestOrigin::from_headers(headers)
            .check_site(&app.config, site)
            .is_err()
        {
            return Err(ApiError::Forbidden);
        }
    }
    Ok(customer)
}

/// Attach a file to the customer's conversation (opening one if they have none).
#[utoipa::path(post, path = "/api/visitor/attachments", tag = "attachments",
    security(("bearer" = [])),
    params(
        ("x-file-name" = Option<String>, Header, description = "the file's name, percent-encoded UTF-8"),
        ("x-client-id" = Option<String>, Header, description = "the sender's id for this upload (1-64 characters): a retry with the same id is stored once"),
    ),
    request_body(content = Vec<u8>, description = "the file; Content-Type: image/png, image/jpeg, image/gif, image/webp, application/pdf or text/plain", content_type = "application/octet-stream"),
    responses(
        (status = 201, body = Uploaded),
        (status = 200, description = "a retry: the message stored the first time", body = Uploaded),
        (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
        (status = 413, description = "larger than the limit (`too_large`)", body = super::ErrorBody),
        (status = 415, description = "a type that is not accepted (`unsupported_type`)", body = super::ErrorBody),
        (status = 422, description = "the content is not what its type says (`type_mismatch`), or a card number in the name or text (`blocked`)", body = super::ErrorBody),
    ))]
pub async fn customer_upload(
    State(app): State<App>,
    ctx: Context,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let cors = super::visitor::cors_headers(&headers);
    let run = async {
        let customer = visitor(&app, &headers).await?;
        let (upload, client_id) = read_upload(&app, &headers, body).await?;
        let ctx = Context {
            role: Some("customer".into()),
            ..ctx
        };
        let sent = app
            .desk
            .customer_attach(&ctx, &customer, &client_id, &upload)
            .await?;
        uploaded(sent)
    };
    match run.await {
        Ok(ok) => Ok((cors, ok).into_response()),
        Err(e) => Err((cors, e).into_response()),
    }
}

/// Attach a file to a ticket assigned to the caller.
#[utoipa::path(post, path = "/api/tickets/{id}/attachments", tag = "attachments",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "ticket id"),
        ("x-file-name" = Option<String>, Header, description = "the file's name, percent-encoded UTF-8"),
        ("x-client-id" = Option<String>, Header, description = "the sender's id for this upload"),
    ),
    request_body(content = Vec<u8>, description = "the file, as for the customer's upload", content_type = "application/octet-stream"),
    responses(
        (status = 201, body = Uploaded),
        (status = 200, description = "a retry: the message stored the first time", body = Uploaded),
        (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody),
        (status = 404, description = "no such ticket, or not assigned to the caller", body = super::ErrorBody),
        (status = 413, body = super::ErrorBody),
        (status = 415, body = super::ErrorBody),
        (status = 422, body = super::ErrorBody),
    ))]
pub async fn staff_upload(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Uploaded>)> {
    if !me.role.works_tickets() {
        return Err(ApiError::Forbidden);
    }
    let (upload, client_id) = read_upload(&app, &headers, body).await?;
    let ctx = ctx.by(&me);
    let sent = app
        .desk
        .agent_attach(&ctx, &me, TicketId(id), &client_id, &upload)
        .await
        .map_err(|e| match e {
            DeskError::Store(StoreError::Conflict(m)) => ApiError::Conflict(m.into()),
            other => other.into(),
        })?;
    uploaded(sent)
}

/// Who reads: a staff session (`dgs_…`) or a customer's visitor token (`dgv_…`).
enum Reader {
    Staff(crate::store::User),
    Customer(Customer),
}

async fn reader(app: &App, headers: &HeaderMap) -> ApiResult<Reader> {
    let token = bearer(headers).ok_or(ApiError::Unauthenticated)?;
    if token.starts_with("dgv_") {
        return Ok(Reader::Customer(visitor(app, headers).await?));
    }
    // A staff token is used from the consoles only, as on every other staff endpoint.
    super::staff_origin(app, headers)?;
    let digest = token::digest(token);
    let idle = app.config.session_idle_timeout;
    match app.store.session_user(&digest, app.clock.now(), idle).await {
        Ok(u) => Ok(Reader::Staff(u)),
        Err(StoreError::NotFound) => Err(ApiError::Unauthenticated),
        Err(e) => Err(e.into()),
    }
}

fn audit_read(ticket: &Ticket, id: AttachmentId, detail: String, allowed: bool) -> Event {
    let ev = if allowed {
        Event::allowed(Action::AttachmentRead)
    } else {
        Event::denied(Action::AttachmentRead)
    };
    ev.customer(ticket.customer.id)
        .object("attachment", id.0)
        .detail(format!("ticket={}; {detail}", ticket.id.0))
}

/// Download an attachment: the customer of its conversation, or staff who may read its
/// ticket while it is not closed (a closed ticket's files: through a grant).
#[utoipa::path(get, path = "/api/attachments/{id}", tag = "attachments",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "attachment id")),
    responses(
        (status = 200, description = "the file, as an attachment (never rendered inline)", content_type = "application/octet-stream"),
        (status = 401, body = super::ErrorBody),
        (status = 403, description = "someone else's ticket, or a closed ticket's file (use a grant)", body = super::ErrorBody),
        (status = 404, body = super::ErrorBody),
        (status = 410, description = "deleted under the retention policy (`deleted`)", body = super::ErrorBody),
        (status = 500, description = "the stored file failed its integrity check (`corrupt`)", body = super::ErrorBody),
    ))]
pub async fn download(
    State(app): State<App>,
    ctx: Context,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, Response> {
    let cors = super::visitor::cors_headers(&headers);
    let run = async {
        let id = AttachmentId(id);
        let who = reader(&app, &headers).await?;
        let att = app.store.attachment(id).await?;
        let ticket = app.store.ticket_by_conversation(att.conversation).await?;
        match who {
            Reader::Customer(c) => {
                if ticket.customer.id != c.id {
                    return Err(ApiError::NotFound);
                }
            }
            Reader::Staff(me) => {
                let ctx = ctx.by(&me);
                let refusal = if !crate::desk::Desk::may_read(&me, &ticket) {
                    Some(("not readable by this user", ApiError::Forbidden))
                } else if ticket.status == TicketStatus::Closed {
                    Some(("closed: needs an access grant", ApiError::Forbidden))
                } else {
                    None
                };
                if let Some((why, err)) = refusal {
                    let _ = app
                        .audit(&ctx, audit_read(&ticket, id, why.into(), false))
                        .await;
                    return Err(err);
                }
                // A read that leaves no trace does not happen.
                app.audit(&ctx, audit_read(&ticket, id, "assigned".into(), true))
                    .await
                    .map_err(|_| ApiError::Unavailable)?;
            }
        }
        serve(&app, att).await
    };
    match run.await {
        Ok(mut resp) => {
            resp.headers_mut().extend(cors);
            Ok(resp)
        }
        Err(e) => Err((cors, e).into_response()),
    }
}

/// `/api/grants/{grant}/attachments/{id}`, by name, so that a bad one is named in the error.
#[derive(serde::Deserialize)]
pub struct GrantedFile {
    grant: i64,
    id: i64,
}

/// Download a closed ticket's attachment through an approved grant to its transcript.
#[utoipa::path(get, path = "/api/grants/{grant}/attachments/{id}", tag = "attachments",
    security(("bearer" = [])),
    params(("grant" = i64, Path, description = "grant id"), ("id" = i64, Path, description = "attachment id")),
    responses(
        (status = 200, description = "the file, as an attachment", content_type = "application/octet-stream"),
        (status = 401, body = super::ErrorBody),
        (status = 403, description = "not the grant's holder, or the grant is not (or no longer) approved", body = super::ErrorBody),
        (status = 404, description = "no such grant, or the file is not part of its transcript", body = super::ErrorBody),
        (status = 410, body = super::ErrorBody),
        (status = 500, body = super::ErrorBody),
    ))]
pub async fn download_granted(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(path): Path<GrantedFile>,
) -> ApiResult<Response> {
    let ctx = ctx.by(&me);
    let (grant, id) = (GrantId(path.grant), AttachmentId(path.id));
    super::grants::expire_due(&app).await?;
    let g = app.store.grant(grant).await?;
    let ticket = app.store.ticket(TicketId(g.grant.object_id)).await?;
    let att = app.store.attachment(id).await?;
    if att.conversation != ticket.conversation {
        return Err(ApiError::NotFound);
    }
    let now = app.clock.now();
    let refusal = if require(&me, Permission::RequestGrant).is_err() {
        Some((
            format!(
                "grant={}; role {} may not read through a grant",
                grant.0, me.role
            ),
            ApiError::Forbidden,
        ))
    } else if let Err(e) = g.grant.check_read(me.id.0, now.0) {
        Some((
            format!("grant={}; {e}", grant.0),
            super::grants::grant_error(e),
        ))
    } else {
        None
    };
    if let Some((why, err)) = refusal {
        let _ = app.audit(&ctx, audit_read(&ticket, id, why, false)).await;
        return Err(err);
    }
    app.audit(
        &ctx,
        audit_read(&ticket, id, format!("grant={}", grant.0), true),
    )
    .await
    .map_err(|_| ApiError::Unavailable)?;
    serve(&app, att).await
}

fn corrupt(att: &StoredAttachment, why: &str) -> ApiError {
    tracing::error!(target: "deskgate::security", attachment = att.id.0,
        conversation = att.conversation.0, why, "attachment failed its integrity check");
    refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        "corrupt",
        "the stored file failed its integrity check and is not served",
    )
}

/// Reads and opens segment `index` of the attachment.
async fn open_segment(
    app: &App,
    att: &StoredAttachment,
    opener: &StreamOpener,
    index: u64,
    count: u64,
) -> Result<Vec<u8>, &'static str> {
    let len = (opener.segment_size() + TAG_LEN) as u64;
    let mut buf = app
        .store
        .attachment_bytes(att.id, opener.segment_offset(index), len)
        .await
        .map_err(|_| "unreadable")?;
    opener
        .open_in_place(index, index + 1 == count, &mut buf)
        .map_err(|_| "a segment failed to open")?;
    Ok(buf)
}

/// The file's header value for `Content-Disposition`: an ASCII fallback and the UTF-8 name.
fn disposition(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .filter(|c| *c != '"' && *c != '\\')
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Streams the opened file. The header and the first and last segments are checked before the
/// answer starts; the length is checked against the recorded size, so a cut stream is refused.
async fn serve(app: &App, att: StoredAttachment) -> ApiResult<Response> {
    let Some(key) = att.key.clone() else {
        return Err(refused(
            StatusCode::GONE,
            "deleted",
            "the file was deleted under the retention policy",
        ));
    };
    let owner = recorder::Owner::conversation(att.conversation.0);
    let rid = RecordId::new(
        &owner,
        u64::try_from(att.id.0).unwrap_or(0),
        RecordKind::ATTACHMENT,
    );
    let header = app
        .store
        .attachment_bytes(att.id, 0, HEADER_LEN as u64)
        .await?;
    let opener = StreamOpener::new(&key, &rid, &header).map_err(|_| corrupt(&att, "header"))?;
    let count = opener
        .segment_count(att.sealed_len)
        .map_err(|_| corrupt(&att, "length"))?;
    let seg = opener.segment_size() as u64;
    let expected = att.size.div_ceil(seg).max(1);
    if count != expected || att.sealed_len != HEADER_LEN as u64 + att.size + count * TAG_LEN as u64
    {
        return Err(corrupt(&att, "length does not match the recorded size"));
    }
    let first = open_segment(app, &att, &opener, 0, count)
        .await
        .map_err(|why| corrupt(&att, why))?;
    let last = if count > 1 {
        Some(
            open_segment(app, &att, &opener, count - 1, count)
                .await
                .map_err(|why| corrupt(&att, why))?,
        )
    } else {
        None
    };
    let mut headers = HeaderMap::new();
    let content_type = if att.content_type == "text/plain" {
        "text/plain; charset=utf-8".to_string()
    } else {
        att.content_type.clone()
    };
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(att.size));
    headers.insert(CONTENT_DISPOSITION, disposition(&att.name));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("content-disposition"),
    );
    let app = app.clone();
    let att = Arc::new(att);
    let opener = Arc::new(opener);
    // Segment 0, the middle ones read and opened one at a time, then the last (already open).
    let middle = futures_util::stream::unfold(1u64, move |index| {
        let (app, att, opener) = (app.clone(), att.clone(), opener.clone());
        async move {
            if index + 1 >= count {
                return None;
            }
            let item = match open_segment(&app, &att, &opener, index, count).await {
                Ok(plain) => Ok(Bytes::from(plain)),
                Err(why) => {
                    let _ = corrupt(&att, why);
                    Err(std::io::Error::other(
                        "attachment failed its integrity check",
                    ))
                }
            };
            // After an error the stream ends; the client sees a cut response.
            let next = if item.is_ok() { index + 1 } else { count };
            Some((item, next))
        }
    });
    let body =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(first)) })
            .chain(middle)
            .chain(futures_util::stream::iter(last.map(|l| Ok(Bytes::from(l)))));
    Ok((StatusCode::OK, headers, Body::from_stream(body)).into_response())
}

/// `OPTIONS` for the widget's cross-origin upload and download: let through a page some site
/// lists (the token then decides, and its site's origins are checked again).
pub async fn preflight(State(app): State<App>, headers: HeaderMap) -> Response {
    let origin = RequestOrigin::from_headers(&headers);
    let allowed = app
        .sites
        .all()
        .any(|site| origin.check_site(&app.config, site).is_ok());
    if !allowed || headers.get(ORIGIN).is_none() {
        return StatusCode::FORBIDDEN.into_response();
    }
    let mut answer = super::visitor::cors_headers(&headers);
    answer.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    answer.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, x-file-name, x-client-id"),
    );
    answer.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    (StatusCode::NO_CONTENT, answer).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_decode_and_disposition_is_safe() {
        assert_eq!(percent_decode("%D1%84%D0%BE%D1%82%D0%BE.png"), "фото.png");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        let d = disposition("фото 1.png");
        let d = d.to_str().unwrap();
        assert!(d.starts_with("attachment; filename=\"____ 1.png\""), "{d}");
        assert!(
            d.ends_with("filename*=UTF-8''%D1%84%D0%BE%D1%82%D0%BE%201.png"),
            "{d}"
        );
    }
}
