//! Calls across nodes: a node asked for a call that another node holds ([`super::directory`])
//! hands the request on to that node, which alone has the call's legs and recorder.
//!
//! - The agent's leg ([`agent_leg`]): after checking the agent's session and claim itself,
//!   the node opens `/media/pcm` on the holder, sends the agent's start frame, and carries
//!   every frame both ways until either side closes. A close from the holder reaches the
//!   agent with its code and reason.
//! - The call API ([`forward`]): the request goes to the holder with the caller's own
//!   credentials, and its answer comes back as it is.
//! - A payment's pause ([`pause_for_verification`]): the step-up flow on one node pauses the
//!   recording of a call held on another, before the code goes out; without the holder's
//!   word that it paused, no code goes out.
//!
//! Nodes reach each other at their `node_url`: plain HTTP on the nodes' own network, or HTTPS
//! when a node serves TLS itself. Over HTTPS a node trusts only the authorities of
//! `node_ca` (else the public web's roots) and checks that the holder's certificate names the
//! host of its `node_url`; a holder it cannot verify is one it cannot reach ([`Nodes`]).
//!
//! Either way the holder checks the caller again, as it would any request. What it takes from
//! the relaying node is only the client's address (for the audit log and per-address limits)
//! and, for a payment's pause, who asked: both under [`HEADER`], a MAC with the keyring's
//! index key, which every node holds and nothing else does. It binds the time, the client's
//! address, the method and the path with its query; a header more than [`SKEW`] from the
//! holder's clock, or with a MAC that does not match, counts for nothing.

use super::directory::{Home, Unavailable};
use crate::app::App;
use crate::audit::Context;
use crate::vault::Vault;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;
use tokio_tungstenite::tungstenite;

/// The header a node puts on a request it relays: `v1 <unix seconds> <client address> <MAC>`.
pub const HEADER: &str = "x-deskgate-relay";
/// Largest difference, in seconds, between the relaying node's clock and the holder's.
pub const SKEW: u64 = 30;
/// Longest the relaying node waits for the holder to take a leg or answer a request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How this node reaches the others: one HTTP client and one TLS client configuration, which
/// trust the authorities of `node_ca` (else the public web's roots) and follow no redirect.
pub struct Nodes {
    http: reqwest::Client,
    tls: std::sync::Arc<rustls::ClientConfig>,
}

impl Nodes {
    /// The clients for `node_ca`: a PEM file of one or more CA certificates, or `None` for
    /// the public web's roots.
    pub fn new(node_ca: Option<&std::path::Path>) -> anyhow::Result<Nodes> {
        let mut roots = rustls::RootCertStore::empty();
        match node_ca {
            Some(path) => {
                use rustls::pki_types::{pem::PemObject, CertificateDer};
                let pem = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("cannot read node_ca {}: {e}", path.display()))?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert =
                        cert.map_err(|e| anyhow::anyhow!("node_ca {}: {e}", path.display()))?;
                    roots
                        .add(cert)
                        .map_err(|e| anyhow::anyhow!("node_ca {}: {e}", path.display()))?;
                }
                anyhow::ensure!(
                    !roots.is_empty(),
                    "node_ca {}: no CERTIFICATE block",
                    path.display()
                );
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Nodes {
            http,
            tls: std::sync::Arc::new(tls),
        })
    }
}

/// A request relayed by another node of the cluster, its [`HEADER`] checked. The server puts
/// it on the request; a relayed request is never relayed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relayed {
    /// The client the relaying node served.
    pub client: IpAddr,
}

/// What a request needs to be handed on to the node holding its call: its headers, client,
/// method and path (with its query), and whether another node relayed it here.
pub struct Hop {
    pub headers: HeaderMap,
    pub client: IpAddr,
    method: Method,
    path: String,
    /// Relayed here by another node: the call must be held here, and is not looked for
    /// elsewhere.
    relayed: bool,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Hop {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Hop {
            headers: parts.headers.clone(),
            client: parts
                .extensions
                .get::<crate::proxy::ClientIp>()
                .map_or(std::net::Ipv4Addr::LOCALHOST.into(), |c| c.0),
            method: parts.method.clone(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string()),
            relayed: parts.extensions.get::<Relayed>().is_some(),
        })
    }
}

impl Hop {
    /// The node holding a call that is not here, by `lookup` in the directory; none for a
    /// request another node relayed (it is not sent on again).
    pub async fn elsewhere(
        &self,
        lookup: impl std::future::Future<Output = Result<Option<Home>, Unavailable>>,
    ) -> Result<Option<Home>, Unavailable> {
        if self.relayed {
            return Ok(None);
        }
        lookup.await.inspect_err(|e| {
            tracing::warn!(error = %e, "cannot look up a call held on another node");
        })
    }

    /// Hands this call API request to the node holding the call and returns its answer as it
    /// is; `body` is the request's JSON, if it has one.
    pub async fn forward(
        &self,
        app: &App,
        home: &Home,
        body: Option<serde_json::Value>,
    ) -> Response {
        forward(
            app,
            home,
            &self.method,
            &self.path,
            &self.headers,
            self.client,
            body,
        )
        .await
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn mac(vault: &Vault, at: u64, client: IpAddr, method: &str, path: &str) -> [u8; 32] {
    vault.node_mac(&[&at.to_string(), &client.to_string(), method, path])
}

/// The [`HEADER`] value for a request this node relays.
pub fn sign(vault: &Vault, method: &str, path: &str, client: IpAddr) -> String {
    sign_at(vault, unix_now(), method, path, client)
}

fn sign_at(vault: &Vault, at: u64, method: &str, path: &str, client: IpAddr) -> String {
    let tag = hex::encode(mac(vault, at, client, method, path));
    format!("v1 {at} {client} {tag}")
}

/// The relay a request carries, if its [`HEADER`] is another node's, for this method and
/// path (with its query), and fresh.
pub fn check(vault: &Vault, headers: &HeaderMap, method: &str, path: &str) -> Option<Relayed> {
    check_at(vault, headers, method, path, unix_now())
}

fn check_at(
    vault: &Vault,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    now: u64,
) -> Option<Relayed> {
    let value = headers.get(HEADER)?.to_str().ok()?;
    let mut parts = value.split(' ');
    let (Some("v1"), Some(at), Some(client), Some(tag), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let at: u64 = at.parse().ok()?;
    let client: IpAddr = client.parse().ok()?;
    let tag = hex::decode(tag).ok()?;
    if now.abs_diff(at) > SKEW {
        return None;
    }
    let want = mac(vault, at, client, method, path);
    bool::from(want.as_slice().ct_eq(&tag)).then_some(Relayed { client })
}

/// The holder's URL for `path_and_query` (as this node received it), and that path as the
/// holder will receive it, which is what the MAC binds.
fn target(home: &Home, path_and_query: &str) -> Option<(reqwest::Url, String)> {
    let url = reqwest::Url::parse(&format!(
        "{}{path_and_query}",
        home.node.trim_end_matches('/')
    ))
    .ok()?;
    let signed = signed_path(&url);
    Some((url, signed))
}

/// The path and query of `url` as the holder receives them, which the MAC binds.
fn signed_path(url: &reqwest::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// Headers of the agent's request that the holder needs to check it as its own. `Host` goes
/// with `Origin`: a console is of the gateway's own origin when the two agree.
const PASSED_ON: &[&str] = &[
    "authorization",
    "host",
    "origin",
    "user-agent",
    "x-request-id",
];

/// Carries the agent's leg to the node holding the call. `start` is the start frame the agent
/// sent, which the holder checks again.
pub async fn agent_leg(
    mut socket: WebSocket,
    app: &App,
    home: &Home,
    start: String,
    headers: &HeaderMap,
    client: IpAddr,
) {
    use tungstenite::client::IntoClientRequest;
    let request = target(home, "/media/pcm").and_then(|(mut url, path)| {
        let ws = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(ws).ok()?;
        Some((url.as_str().into_client_request().ok()?, path))
    });
    let Some((mut request, path)) = request else {
        return super::close_with(&mut socket, super::close::INTERNAL, "bad node address").await;
    };
    for name in PASSED_ON {
        if let Some(v) = headers.get(*name) {
            request.headers_mut().insert(*name, v.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(&sign(&app.vault, "GET", &path, client)) {
        request.headers_mut().insert(HEADER, v);
    }
    // Without Nagle: a 20 ms frame goes out at once, as on the agent's own socket.
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        request,
        None,
        true,
        Some(tokio_tungstenite::Connector::Rustls(app.nodes.tls.clone())),
    );
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, connect).await;
    let mut upstream = match connected {
        Ok(Ok((ws, _))) => ws,
        failed => {
            let error = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".into(),
            };
            tracing::warn!(call = %home.call, node = %home.node, %error, "cannot reach the node holding the call");
            return super::close_with(
                &mut socket,
                super::close::INTERNAL,
                "the node holding the call cannot be reached",
            )
            .await;
        }
    };
    if upstream
        .send(tungstenite::Message::Text(start.into()))
        .await
        .is_err()
    {
        return super::close_with(
            &mut socket,
            super::close::INTERNAL,
            "the node holding the call went away",
        )
        .await;
    }
    let (mut up_tx, mut up_rx) = upstream.split();
    let (mut down_tx, mut down_rx) = socket.split();
    let to_holder = async {
        while let Some(Ok(m)) = down_rx.next().await {
            let m = match m {
                Message::Binary(b) => tungstenite::Message::Binary(b),
                Message::Text(t) => tungstenite::Message::Text(t.as_str().into()),
                Message::Close(c) => {
                    let frame = c.map(|c| tungstenite::protocol::CloseFrame {
                        code: c.code.into(),
                        reason: c.reason.as_str().into(),
                    });
                    let _ = up_tx.send(tungstenite::Message::Close(frame)).await;
                    return;
                }
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            if up_tx.send(m).await.is_err() {
                return;
            }
        }
        let _ = up_tx.close().await;
    };
    let to_agent = async {
        while let Some(Ok(m)) = up_rx.next().await {
            let m = match m {
                tungstenite::Message::Binary(b) => Message::Binary(b),
                tungstenite::Message::Text(t) => Message::Text(t.as_str().into()),
                tungstenite::Message::Close(c) => {
                    let frame = c.map(|c| CloseFrame {
                        code: c.code.into(),
                        reason: c.reason.as_str().into(),
                    });
                    let _ = down_tx.send(Message::Close(frame)).await;
                    return;
                }
                _ => continue,
            };
            if down_tx.send(m).await.is_err() {
                return;
            }
        }
        let frame = CloseFrame {
            code: super::close::INTERNAL,
            reason: "the node holding the call went away".into(),
        };
        let _ = down_tx.send(Message::Close(Some(frame))).await;
    };
    let stopping = tokio::select! {
        _ = to_holder => false,
        _ = to_agent => false,
        _ = app.shutdown.cancelled() => true,
    };
    if stopping {
        // This node stops: the agent reconnects (through any node) and is relayed again.
        let frame = CloseFrame {
            code: crate::protocol::close::SERVICE_RESTART,
            reason: "node restarting; reconnect".into(),
        };
        let _ = down_tx.send(Message::Close(Some(frame))).await;
    }
}

/// Hands a call API request to the node holding the call and returns its answer as it is.
/// `path` is the request's path with its query; `body` is JSON, if it has one.
async fn forward(
    app: &App,
    home: &Home,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    client: IpAddr,
    body: Option<serde_json::Value>,
) -> Response {
    let Some((url, path)) = target(home, path) else {
        return crate::api::ApiError::Unavailable.into_response();
    };
    let mut request = app
        .nodes
        .http
        .request(method.clone(), url)
        .timeout(CONNECT_TIMEOUT)
        .header(HEADER, sign(&app.vault, method.as_str(), &path, client));
    for name in PASSED_ON {
        if let Some(v) = headers.get(*name) {
            request = request.header(*name, v.clone());
        }
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let answer = async {
        let r = request.send().await?;
        let status = r.status();
        let kind = r.headers().get("content-type").cloned();
        Ok::<_, reqwest::Error>((status, kind, r.bytes().await?))
    };
    match answer.await {
        Ok((status, kind, bytes)) => {
            let mut response = (status, bytes).into_response();
            if let Some(kind) = kind {
                response.headers_mut().insert("content-type", kind);
            }
            response
        }
        Err(e) => {
            tracing::warn!(call = %home.call, node = %home.node, error = %e, "cannot reach the node holding the call");
            crate::api::ApiError::Unavailable.into_response()
        }
    }
}

/// The URL of a payment's pause on the holder, with who asked, and its signed path.
fn pause_target(home: &Home, action: &str, ctx: &Context) -> Option<(reqwest::Url, String)> {
    let mut url = reqwest::Url::parse(&home.node).ok()?;
    url.path_segments_mut().ok()?.clear().extend([
        "internal",
        "calls",
        &home.call,
        "verification-pause",
    ]);
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("action", action);
        if let Some(actor) = ctx.actor {
            query.append_pair("actor", &actor.0.to_string());
        }
        for (k, v) in [("role", &ctx.role), ("request", &ctx.request_id)] {
            if let Some(v) = v {
                query.append_pair(k, v);
            }
        }
    }
    let signed = signed_path(&url);
    Some((url, signed))
}

/// Pauses, on the node holding it, the recording of a call whose customer is about to be asked
/// on this node to verify for a payment. Anything but the holder's word that the call is
/// paused (or has ended) is an error: the code must not go out.
pub async fn pause_for_verification(
    app: &App,
    ctx: &Context,
    home: &Home,
    action: &str,
) -> Result<(), String> {
    let Some((url, path)) = pause_target(home, action, ctx) else {
        tracing::error!(call = %home.call, node = %home.node, "bad node address; the call is not paused for a payment");
        return Err("the node holding the call has a bad address".into());
    };
    let client = ctx
        .ip
        .as_deref()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let sent = app
        .nodes
        .http
        .post(url)
        .timeout(CONNECT_TIMEOUT)
        .header(HEADER, sign(&app.vault, "POST", &path, client))
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() || r.status() == StatusCode::GONE => Ok(()),
        Ok(r) => {
            tracing::error!(call = %home.call, node = %home.node, status = %r.status(), "the node holding the call did not pause it for a payment");
            Err(format!(
                "the node holding the call answered {}",
                r.status().as_u16()
            ))
        }
        Err(e) => {
            tracing::error!(call = %home.call, node = %home.node, error = %e, "cannot reach the node holding the call to pause it for a payment");
            Err("the node holding the call cannot be reached".into())
        }
    }
}

/// `POST /internal/calls/{id}/verification-pause`: another node's step-up flow pauses a call
/// held here, before its code goes out. Only a relayed request is taken; anything else finds no
/// such path. 204: paused (or paused already); 410: no such call here, it has ended; 503: the
/// call did not pause.
pub async fn verification_pause(
    axum::extract::State(app): axum::extract::State<App>,
    relayed: Option<axum::Extension<Relayed>>,
    crate::api::Path(id): crate::api::Path<String>,
    crate::api::Query(q): crate::api::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(axum::Extension(relayed)) = relayed else {
        return crate::api::ApiError::NotFound.into_response();
    };
    let ctx = Context {
        actor: q
            .get("actor")
            .and_then(|a| a.parse().ok())
            .map(crate::ids::UserId),
        role: q.get("role").cloned(),
        ip: Some(relayed.client.to_string()),
        user_agent: None,
        request_id: q.get("request").cloned(),
    };
    let Some(action) = q.get("action") else {
        return crate::api::ApiError::Invalid("action is needed".into()).into_response();
    };
    let Some(call) = app.calls.get(&id) else {
        return StatusCode::GONE.into_response();
    };
    match super::call::pause_call_for_verification(&app, &ctx, &call, action).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(why) => crate::api::ApiError::Refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the call's recording did not pause: {why}"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> Vault {
        Vault::with_keyring(recorder::keyring::Keyring::generate(0))
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn a_relay_counts_only_for_its_method_path_and_time_and_with_the_keyring() {
        let v = vault();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let now = 1_700_000_000;
        let h = headers(&sign_at(&v, now, "GET", "/media/pcm", client));
        assert_eq!(
            check_at(&v, &h, "GET", "/media/pcm", now + SKEW),
            Some(Relayed { client })
        );
        assert_eq!(check_at(&v, &h, "POST", "/media/pcm", now), None);
        assert_eq!(check_at(&v, &h, "GET", "/media/pcm?x=1", now), None);
        assert_eq!(check_at(&v, &h, "GET", "/media/pcm", now + SKEW + 1), None);
        assert_eq!(check_at(&vault(), &h, "GET", "/media/pcm", now), None);
        // The address is under the MAC: another one does not pass.
        let forged =
            sign_at(&v, now, "GET", "/media/pcm", client).replace("203.0.113.7", "198.51.100.1");
        assert_eq!(
            check_at(&v, &headers(&forged), "GET", "/media/pcm", now),
            None
        );
        for bad in [
            "",
            "v1",
            "v2 1700000000 203.0.113.7 00",
            "v1 x 203.0.113.7 00",
            "v1 1700000000 nowhere 00",
        ] {
            assert_eq!(
                check_at(&v, &headers(bad), "GET", "/media/pcm", now),
                None,
                "{bad}"
            );
        }
        assert_eq!(
            check_at(&v, &HeaderMap::new(), "GET", "/media/pcm", now),
            None
        );
    }

    #[test]
    fn a_pause_path_carries_who_asked_escaped() {
        let home = Home {
            call: "web-a b".into(),
            node: "http://10.0.0.5:8080".into(),
            ticket: crate::ids::TicketId(3),
            customer: crate::ids::CustomerId(4),
        };
        let ctx = Context {
            actor: Some(crate::ids::UserId(7)),
            role: Some("agent".into()),
            request_id: Some("r-1&x=2".into()),
            ..Default::default()
        };
        let (url, signed) = pause_target(&home, "take_payment", &ctx).unwrap();
        assert_eq!(
            signed,
            "/internal/calls/web-a%20b/verification-pause?action=take_payment&actor=7&role=agent&request=r-1%26x%3D2"
        );
        assert_eq!(url.as_str(), format!("http://10.0.0.5:8080{signed}"));
        let (url, signed) = target(&home, "/api/calls/web-1/pause").unwrap();
        assert_eq!(
            (url.as_str(), signed.as_str()),
            (
                "http://10.0.0.5:8080/api/calls/web-1/pause",
                "/api/calls/web-1/pause"
            )
        );
    }
}
