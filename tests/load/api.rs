//! The REST calls of a load client: a visitor token for a customer (`POST /api/visitor`) and a
//! session token for staff (`POST /api/session`) before a WebSocket opens; and, for `calls`, a
//! live call's ticket (`GET /api/calls/{call}`) and a recording's state
//! (`GET /api/recordings/{id}`), read with a lead's session since the ticket is an agent's.

use std::fmt;

use serde::Deserialize;
use serde_json::json;

use crate::http::{HttpClient, HttpError};

/// A bearer token; printed as `***` so it cannot end up in a report or a log line.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

pub async fn visitor_token(http: &mut HttpClient, site_key: &str) -> Result<Token, HttpError> {
    #[derive(Deserialize)]
    struct Visitor {
        visitor_token: Token,
    }
    let visitor: Visitor = http
        .post_json("/api/visitor", &json!({ "site_key": site_key }))
        .await?;
    Ok(visitor.visitor_token)
}

pub async fn agent_session(
    http: &mut HttpClient,
    username: &str,
    password: &str,
) -> Result<Token, HttpError> {
    #[derive(Deserialize)]
    struct Session {
        token: Token,
    }
    let session: Session = http
        .post_json(
            "/api/session",
            &json!({ "username": username, "password": password }),
        )
        .await?;
    Ok(session.token)
}

/// What `GET /api/calls/{call}` says of a live call that the generator uses.
#[derive(Debug, Deserialize)]
pub struct LiveCall {
    pub ticket: crate::frames::Id,
    pub recording: i64,
}

pub async fn live_call(
    http: &mut HttpClient,
    session: &Token,
    call: &str,
) -> Result<LiveCall, HttpError> {
    http.get_json(&format!("/api/calls/{call}"), session.expose())
        .await
}

/// What `GET /api/recordings/{id}` says of a recording that the generator checks.
#[derive(Debug, Deserialize)]
pub struct Recording {
    /// `recording`, `finished` or `failed`.
    pub state: String,
    pub duration_ms: u64,
}

pub async fn recording(
    http: &mut HttpClient,
    session: &Token,
    id: i64,
) -> Result<Recording, HttpError> {
    http.get_json(&format!("/api/recordings/{id}"), session.expose())
        .await
}
