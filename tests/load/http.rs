//! A small HTTP/1.1 client for the generator's REST calls (visitor tokens, agent logins, and
//! for `calls` a call's ticket and its recording's state): JSON in, JSON out, one keep-alive
//! connection per client, bound to a loopback source address like the WebSocket sockets. Small
//! on purpose: a few endpoints do not need a full HTTP stack.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::target::{self, Target};

/// A request that takes longer than this counts as failed; the gateway answers in milliseconds.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Responses of the REST calls are small; anything bigger is a fault, not something to buffer.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub enum HttpError {
    Io(io::Error),
    /// The server closed a kept-alive connection before answering; safe to retry once.
    Closed,
    Timeout,
    Status {
        status: u16,
        body: String,
    },
    Malformed(&'static str),
    Json(serde_json::Error),
}

impl HttpError {
    /// A short label to count errors by kind in the report.
    pub fn label(&self) -> String {
        match self {
            HttpError::Io(e) => format!("io: {}", e.kind()),
            HttpError::Closed => "closed before response".to_owned(),
            HttpError::Timeout => "timeout".to_owned(),
            HttpError::Status { status, .. } => format!("HTTP {status}"),
            HttpError::Malformed(what) => format!("malformed response: {what}"),
            HttpError::Json(_) => "unexpected JSON body".to_owned(),
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Io(e) => write!(f, "i/o error: {e}"),
            HttpError::Status { status, body } => write!(f, "HTTP {status}: {body}"),
            HttpError::Json(e) => write!(f, "unexpected JSON body: {e}"),
            other => f.write_str(&other.label()),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        HttpError::Io(e)
    }
}

pub struct HttpClient {
    target: Target,
    source: Option<IpAddr>,
    conn: Option<Conn>,
}

/// One request: the REST calls are POSTs of JSON, or GETs with a staff session.
struct Request<'a> {
    method: &'static str,
    path: &'a str,
    bearer: Option<&'a str>,
    body: &'a [u8],
}

/// An open connection and the bytes read from it that are not consumed yet.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

#[derive(Debug, PartialEq, Eq)]
struct Head {
    len: usize,
    status: u16,
    framing: Framing,
    close: bool,
}

impl HttpClient {
    pub fn new(target: Target, source: Option<IpAddr>) -> Self {
        Self {
            target,
            source,
            conn: None,
        }
    }

    /// POSTs `body` as JSON and decodes a 2xx JSON answer; any other status is an error
    /// carrying the start of the body.
    pub async fn post_json<B, R>(&mut self, path: &str, body: &B) -> Result<R, HttpError>
    where
        B: Serialize,
        R: DeserializeOwned,
    {
        let body = serde_json::to_vec(body).map_err(HttpError::Json)?;
        self.json(Request {
            method: "POST",
            path,
            bearer: None,
            body: &body,
        })
        .await
    }

    /// GETs `path` with a staff session's bearer token and decodes a 2xx JSON answer.
    pub async fn get_json<R>(&mut self, path: &str, bearer: &str) -> Result<R, HttpError>
    where
        R: DeserializeOwned,
    {
        self.json(Request {
            method: "GET",
            path,
            bearer: Some(bearer),
            body: &[],
        })
        .await
    }

    async fn json<R: DeserializeOwned>(&mut self, req: Request<'_>) -> Result<R, HttpError> {
        let response = match tokio::time::timeout(REQUEST_TIMEOUT, self.request(&req)).await {
            Ok(response) => response,
            Err(_) => {
                self.conn = None;
                Err(HttpError::Timeout)
            }
        };
        let (status, body) = response?;
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&body);
            return Err(HttpError::Status {
                status,
                body: text.chars().take(200).collect(),
            });
        }
        serde_json::from_slice(&body).map_err(HttpError::Json)
    }

    async fn request(&mut self, req: &Request<'_>) -> Result<(u16, Vec<u8>), HttpError> {
        let reused = self.conn.is_some();
        let result = match self.exchange(req).await {
            Err(HttpError::Closed) if reused => {
                self.conn = None;
                self.exchange(req).await
            }
            other => other,
        };
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn exchange(&mut self, req: &Request<'_>) -> Result<(u16, Vec<u8>), HttpError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let stream = target::connect(self.target, self.source).await?;
                self.conn.insert(Conn {
                    stream,
                    buf: Vec::with_capacity(1024),
                })
            }
        };
        let authorization = req
            .bearer
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Accept: application/json\r\n{authorization}Content-Length: {len}\r\n\r\n",
            method = req.method,
            path = req.path,
            host = self.target,
            len = req.body.len(),
        )
        .into_bytes();
        request.extend_from_slice(req.body);
        conn.stream.write_all(&request).await?;

        let head = loop {
            if let Some(head) = parse_head(&conn.buf)? {
                break head;
            }
            if conn.fill().await? == 0 {
                return Err(if conn.buf.is_empty() {
                    HttpError::Closed
                } else {
                    HttpError::Malformed("connection closed inside the response head")
                });
            }
        };
        conn.buf.drain(..head.len);
        let body = match head.framing {
            Framing::Length(n) => conn.take(n).await?,
            Framing::Chunked => conn.take_chunked().await?,
            Framing::UntilClose => conn.take_until_close().await?,
        };
        if head.close || head.framing == Framing::UntilClose {
            self.conn = None;
        }
        Ok((head.status, body))
    }
}

impl Conn {
    /// Reads more bytes into the buffer; 0 means end of stream.
    async fn fill(&mut self) -> Result<usize, HttpError> {
        if self.buf.len() > MAX_RESPONSE_BYTES {
            return Err(HttpError::Malformed("response too large"));
        }
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    async fn take(&mut self, n: usize) -> Result<Vec<u8>, HttpError> {
        if n > MAX_RESPONSE_BYTES {
            return Err(HttpError::Malformed("response too large"));
        }
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Err(HttpError::Malformed("connection closed inside the body"));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn take_line(&mut self) -> Result<Vec<u8>, HttpError> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.drain(..end + 2).take(end).collect();
                return Ok(line);
            }
            if self.fill().await? == 0 {
                return Err(HttpError::Malformed(
                    "connection closed inside a chunk header",
                ));
            }
        }
    }

    async fn take_chunked(&mut self) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        loop {
            let line = self.take_line().await?;
            let size = parse_chunk_size(&line)?;
            if size == 0 {
                // Trailer fields, up to the empty line.
                while !self.take_line().await?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > MAX_RESPONSE_BYTES {
                return Err(HttpError::Malformed("response too large"));
            }
            let chunk = self.take(size + 2).await?;
            body.extend_from_slice(&chunk[..size]);
        }
    }

    async fn take_until_close(&mut self) -> Result<Vec<u8>, HttpError> {
        while self.fill().await? > 0 {}
        Ok(std::mem::take(&mut self.buf))
    }
}

/// Parses a complete response head at the start of `buf`, or `None` if more bytes are needed.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HttpError::Malformed("invalid response head")),
    };
    let status = response
        .code
        .ok_or(HttpError::Malformed("no status code"))?;
    let mut framing = Framing::UntilClose;
    let mut close = response.version == Some(0);
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value)
            .map_err(|_| HttpError::Malformed("non-UTF-8 header"))?
            .trim();
        if header.name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse()
                .map_err(|_| HttpError::Malformed("invalid content-length"))?;
            if framing != Framing::Chunked {
                framing = Framing::Length(n);
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if value.to_ascii_lowercase().ends_with("chunked") {
                framing = Framing::Chunked;
            }
        } else if header.name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    if status == 204 || status == 304 || (100..200).contains(&status) {
        framing = Framing::Length(0);
    }
    Ok(Some(Head {
        len,
        status,
        framing,
        close,
    }))
}

fn parse_chunk_size(line: &[u8]) -> Result<usize, HttpError> {
    let line = std::str::from_utf8(line).map_err(|_| HttpError::Malformed("chunk header"))?;
    let hex = line.split(';').next().unwrap_or("").trim();
    usize::from_str_radix(hex, 16).map_err(|_| HttpError::Malformed("chunk size"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use tokio::net::TcpListener;

    #[test]
    fn head_with_content_length() {
        let head =
            parse_head(b"HTTP/1.1 201 Created\r\nContent-Length: 12\r\n\r\n{\"a\":1}").unwrap();
        let head = head.unwrap();
        assert_eq!(head.status, 201);
        assert_eq!(head.framing, Framing::Length(12));
        assert!(!head.close);
    }

    #[test]
    fn partial_head_needs_more() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
    }

    #[test]
    fn chunked_wins_over_length_and_close_is_seen() {
        let head = parse_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        assert!(head.close);
    }

    #[test]
    fn chunk_sizes_are_hex_with_extensions() {
        assert_eq!(parse_chunk_size(b"1a").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"0;name=x").unwrap(), 0);
        assert!(parse_chunk_size(b"zz").is_err());
    }

    /// Serves the canned responses in order on one connection, then on the next ones.
    async fn server(responses: Vec<&'static str>) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target::parse(&listener.local_addr().unwrap().to_string()).unwrap();
        tokio::spawn(async move {
            let mut responses = responses.into_iter();
            'conns: loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                loop {
                    // Read one request: head plus Content-Length body.
                    let mut chunk = [0u8; 4096];
                    let n = stream.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        continue 'conns;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let len: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    buf.drain(..end + 4 + len);
                    let Some(response) = responses.next() else {
                        return;
                    };
                    stream.write_all(response.as_bytes()).await.unwrap();
                    if response.contains("Connection: close") {
                        continue 'conns;
                    }
                }
            }
        });
        target
    }

    #[tokio::test]
    async fn keep_alive_chunked_and_close() {
        let target = server(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{\"n\": 1}\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"n\"\r\n4\r\n: 2}\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\n{\"n\": 3}",
            "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 4\r\n\r\nslow",
        ])
        .await;
        let mut client = HttpClient::new(target, None);
        for n in 1..=3 {
            let v: Value = client.post_json("/api/x", &json!({"a": n})).await.unwrap();
            assert_eq!(v["n"], n);
        }
        let err = client
            .post_json::<_, Value>("/api/x", &json!({}))
            .await
            .unwrap_err();
        assert_eq!(err.label(), "HTTP 429");
    }
}
