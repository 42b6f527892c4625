//! The two REST calls a load client makes before it can open a WebSocket: a visitor token for
//! a customer (`POST /api/visitor`) and a session token for an agent (`POST /api/session`).

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
