//! Opening a `deskgate.v1` WebSocket session: TCP from a chosen source address, the upgrade
//! with the subprotocol, `hello` with the token, and the wait for `welcome`; and the plain
//! upgrade of a call's media sockets. Failures carry the stage they happened in, so the report
//! can say where connections were lost.

use std::fmt;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::{ORIGIN, SEC_WEBSOCKET_PROTOCOL};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::frames::{In, Out, ResumeAt, Welcome};
use crate::target::{self, Sources, Target};

pub const SUBPROTOCOL: &str = "deskgate.v1";

pub type Ws = WebSocketStream<TcpStream>;

/// Customers read a few small frames; agents read every message of many conversations.
#[derive(Clone, Copy, Debug)]
pub enum Role {
    Customer,
    Agent,
}

impl Role {
    fn path(self) -> &'static str {
        match self {
            Role::Customer => "/ws/customer",
            Role::Agent => "/ws/agent",
        }
    }

    /// The client's own read buffer: tungstenite allocates it eagerly per connection (128 KiB
    /// by default), which would make the generator, not the gateway, run out of memory first.
    fn read_buffer(self) -> usize {
        match self {
            Role::Customer => 4 * 1024,
            Role::Agent => 64 * 1024,
        }
    }
}

fn config(role: Role) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(role.read_buffer())
        // Write each frame at once; latency is what is being measured.
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

#[derive(Debug)]
pub struct ConnectError {
    pub stage: &'static str,
    pub detail: String,
}

impl ConnectError {
    fn new(stage: &'static str, detail: impl fmt::Display) -> Self {
        Self {
            stage,
            detail: detail.to_string(),
        }
    }

    /// A short label to count failures by kind.
    pub fn label(&self) -> String {
        format!("{}: {}", self.stage, self.detail)
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

impl std::error::Error for ConnectError {}

/// TCP connect and WebSocket upgrade offering `deskgate.v1`; the gateway must choose it.
pub async fn open(target: Target, sources: &Sources, role: Role) -> Result<Ws, ConnectError> {
    open_with(target, sources, role, None).await
}

/// [`open`] with a small kernel receive buffer (see [`target::connect_with`]).
pub async fn open_with(
    target: Target,
    sources: &Sources,
    role: Role,
    recv_buffer: Option<u32>,
) -> Result<Ws, ConnectError> {
    let tcp = target::connect_with(target, sources.next(), recv_buffer)
        .await
        .map_err(|e| ConnectError::new("tcp", e.kind()))?;
    let url = format!("ws://{target}{}", role.path());
    let mut request = url
        .into_client_request()
        .map_err(|e| ConnectError::new("upgrade", e))?;
    request.headers_mut().insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let (ws, response) =
        tokio_tungstenite::client_async_with_config(request, tcp, Some(config(role)))
            .await
            .map_err(|e| ConnectError::new("upgrade", upgrade_error(&e)))?;
    let chosen = response
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    if chosen != Some(SUBPROTOCOL) {
        return Err(ConnectError::new(
            "upgrade",
            format!("gateway chose subprotocol {chosen:?}"),
        ));
    }
    Ok(ws)
}

/// TCP connect and a plain WebSocket upgrade to a media path (`/media/twilio`, `/media/pcm`):
/// no subprotocol, and the `Origin` of the gateway's own pages, as the agent console sends.
pub async fn open_media(target: Target, sources: &Sources, path: &str) -> Result<Ws, ConnectError> {
    let tcp = target::connect(target, sources.next())
        .await
        .map_err(|e| ConnectError::new("tcp", e.kind()))?;
    let mut request = format!("ws://{target}{path}")
        .into_client_request()
        .map_err(|e| ConnectError::new("upgrade", e))?;
    let origin = HeaderValue::from_str(&format!("http://{target}"))
        .map_err(|e| ConnectError::new("upgrade", e))?;
    request.headers_mut().insert(ORIGIN, origin);
    // A 20 ms frame is 320 bytes of PCM16 or about 300 bytes of JSON; a few of them at a time.
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024));
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
        .await
        .map_err(|e| ConnectError::new("upgrade", upgrade_error(&e)))?;
    Ok(ws)
}

fn upgrade_error(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(response) => format!("HTTP {}", response.status().as_u16()),
        tungstenite::Error::Io(io) => format!("io: {}", io.kind()),
        other => other.to_string(),
    }
}

/// Sends `hello` and waits for `welcome`. Anything else first (an error, a close, another
/// frame) is a failure: the protocol serves nothing before `welcome`.
pub async fn hello(ws: &mut Ws, token: &str, timeout: Duration) -> Result<Welcome, ConnectError> {
    hello_resuming(ws, token, &[], timeout).await
}

/// [`hello`] after a lost connection, asking for what came after `resume` (the replay and
/// `resumed` follow the `welcome`).
pub async fn hello_resuming(
    ws: &mut Ws,
    token: &str,
    resume: &[ResumeAt],
    timeout: Duration,
) -> Result<Welcome, ConnectError> {
    ws.send(Message::text(Out::Hello { token, resume }.to_json()))
        .await
        .map_err(|e| ConnectError::new("hello", e))?;
    let reply = tokio::time::timeout(timeout, next_text(ws))
        .await
        .map_err(|_| ConnectError::new("hello", "no welcome in time"))??;
    match In::parse(&reply) {
        Ok(In::Welcome(welcome)) => Ok(welcome),
        Ok(In::Error(e)) => Err(ConnectError::new("hello", format!("error {}", e.code))),
        Ok(_) | Err(_) => Err(ConnectError::new(
            "hello",
            format!("expected welcome, got {}", crate::frames::type_of(&reply)),
        )),
    }
}

/// The next text frame, skipping pings and pongs; a close or the end of the stream is an error
/// naming the close code.
async fn next_text(ws: &mut Ws) -> Result<String, ConnectError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
            Some(Ok(Message::Close(frame))) => {
                return Err(ConnectError::new("hello", close_label(frame.as_ref())))
            }
            Some(Ok(Message::Binary(_))) => {
                return Err(ConnectError::new("hello", "binary frame from the gateway"))
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(ConnectError::new("hello", e)),
            None => return Err(ConnectError::new("hello", "connection ended")),
        }
    }
}

/// Sends a close frame and waits briefly for the gateway's.
pub async fn close(mut socket: Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        if socket.close(None).await.is_ok() {
            while let Some(Ok(_)) = socket.next().await {}
        }
    })
    .await;
}

/// "closed 4001" etc., for counting closes by code.
pub fn close_label(frame: Option<&tungstenite::protocol::CloseFrame>) -> String {
    match frame {
        Some(frame) => format!("closed {}", u16::from(frame.code)),
        None => "closed without code".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

    /// A stand-in gateway: accepts `deskgate.v1` if `agree`, answers hello with `reply`.
    async fn fake_gateway(agree: bool, reply: &'static str) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target::parse(&listener.local_addr().unwrap().to_string()).unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            #[allow(clippy::result_large_err)]
            let callback = move |req: &Request, mut resp: Response| {
                let offered = req.headers().get(SEC_WEBSOCKET_PROTOCOL).cloned();
                assert_eq!(offered.unwrap(), SUBPROTOCOL);
                if agree {
                    resp.headers_mut().insert(
                        SEC_WEBSOCKET_PROTOCOL,
                        HeaderValue::from_static(SUBPROTOCOL),
                    );
                }
                Ok(resp)
            };
            let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                return;
            };
            let hello = ws.next().await.unwrap().unwrap();
            assert!(hello.to_text().unwrap().contains(r#""token":"tok""#));
            ws.send(Message::text(reply)).await.unwrap();
            let _ = ws.next().await;
        });
        target
    }

    #[tokio::test]
    async fn hello_then_welcome() {
        let target = fake_gateway(
            true,
            r#"{"type":"welcome","customer":{"id":1},"conversation":null}"#,
        )
        .await;
        let sources = Sources::new(target, 4);
        let mut ws = open(target, &sources, Role::Customer).await.unwrap();
        let welcome = hello(&mut ws, "tok", Duration::from_secs(5)).await.unwrap();
        assert!(welcome.customer.is_some());
    }

    #[tokio::test]
    async fn an_error_instead_of_welcome_is_a_failure() {
        let target = fake_gateway(
            true,
            r#"{"type":"error","code":"invalid_frame","message":"x"}"#,
        )
        .await;
        let sources = Sources::new(target, 0);
        let mut ws = open(target, &sources, Role::Agent).await.unwrap();
        let err = hello(&mut ws, "tok", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err.label(), "hello: error invalid_frame");
    }

    #[tokio::test]
    async fn a_gateway_that_ignores_the_subprotocol_is_refused() {
        let target = fake_gateway(false, "{}").await;
        let sources = Sources::new(target, 0);
        let err = open(target, &sources, Role::Customer).await.unwrap_err();
        assert_eq!(err.stage, "upgrade");
    }
}
