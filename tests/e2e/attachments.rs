//! Attachments through the real server: customers and agents upload over HTTP, both sides see
//! the file live as a message and open it; the wrong people, wrong files and card numbers are
//! refused clearly; the content is nowhere on disk in clear; a closed ticket's file opens only
//! through a grant, audited; retention makes it unreadable; tampering is detected.

use crate::vault::{canary, files_containing};
use deskgate_tests::{Opened, Staff, TestApp, WsClient};
use serde_json::{json, Value};
use sqlx::{Connection, SqliteConnection};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);
const HOUR: Duration = Duration::from_secs(3600);

/// A tiny valid PNG header followed by `tail`.
fn png(tail: &[u8]) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    v.extend_from_slice(tail);
    v
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

async fn upload(
    app: &TestApp,
    path: &str,
    token: &str,
    content_type: &str,
    name: &str,
    body: Vec<u8>,
) -> Answer {
    let resp = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", content_type)
        .header("x-file-name", encode(name))
        .body(body)
        .send()
        .await
        .unwrap();
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

async fn customer_upload(app: &TestApp, c: &Opened, ty: &str, name: &str, body: Vec<u8>) -> Answer {
    upload(
        app,
        "/api/visitor/attachments",
        &c.visitor.token,
        ty,
        name,
        body,
    )
    .await
}

async fn agent_upload(
    app: &TestApp,
    who: &Staff,
    ticket: i64,
    ty: &str,
    name: &str,
    body: Vec<u8>,
) -> Answer {
    let path = format!("/api/tickets/{ticket}/attachments");
    upload(app, &path, &who.token, ty, name, body).await
}

/// `encodeURIComponent`, as the widget sends names.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn download(app: &TestApp, path: &str, token: &str) -> Answer {
    let resp = app
        .http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = match resp.bytes().await {
        Ok(b) => b.to_vec(),
        // A response cut short is not a file.
        Err(_) => b"<cut>".to_vec(),
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn att_path(id: i64) -> String {
    format!("/api/attachments/{id}")
}

/// Grace claims a customer's ticket; both sockets are quiet afterwards.
async fn claimed(app: &TestApp) -> (Staff, WsClient, Opened) {
    let grace = app.agent("grace").await;
    let (mut g, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket("I have a screenshot").await;
    let ok = g
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    c.ws.drain(QUIET).await;
    g.drain(QUIET).await;
    (grace, g, c)
}

async fn db(app: &TestApp) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", app.db_path().display()))
        .await
        .unwrap()
}

#[tokio::test]
async fn customers_and_agents_exchange_files_and_only_they_open_them() {
    let app = TestApp::start().await;
    let (grace, mut g, mut c) = claimed(&app).await;
    let shot = png(b"customer screenshot bytes");

    let up = customer_upload(
        &app,
        &c,
        "image/png",
        "../screen shot \u{202E}1.png",
        shot.clone(),
    )
    .await;
    assert_eq!(up.status, 201, "{}", up.json());
    let m = &up.json()["message"];
    let att = m["attachment"].clone();
    assert_eq!(att["name"], "screen shot 1.png", "{m}");
    assert_eq!(m["text"], "screen shot 1.png");
    assert_eq!(att["content_type"], "image/png");
    assert_eq!(att["size"], shot.len());
    let id = att["id"].as_i64().unwrap();

    // Both sides see it live as a message carrying the file.
    for ws in [&mut g, &mut c.ws] {
        let f = ws
            .recv_where("the attachment message", |f| {
                f["type"] == "message" && f["attachment"]["id"] == id
            })
            .await;
        assert_eq!(f["from"]["kind"], "customer");
    }
    // The agent opens it, as an attachment that is never rendered inline.
    let got = download(&app, &att_path(id), &grace.token).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, shot);
    assert_eq!(got.headers["content-type"], "image/png");
    let disposition = got.headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(
        disposition.contains("screen%20shot%201.png"),
        "{disposition}"
    );
    assert_eq!(got.headers["x-content-type-options"], "nosniff");
    assert_eq!(got.headers["content-security-policy"], "sandbox");
    // The customer too.
    let mine = download(&app, &att_path(id), &c.visitor.token).await;
    assert_eq!((mine.status, mine.body), (200, shot.clone()));

    // The agent replies with a PDF; the customer sees and opens it.
    let pdf = b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF\n".to_vec();
    let up = agent_upload(
        &app,
        &grace,
        c.ticket,
        "application/pdf",
        "Invoice 42.pdf",
        pdf.clone(),
    )
    .await;
    assert_eq!(up.status, 201, "{}", up.json());
    let pdf_id = up.json()["message"]["attachment"]["id"].as_i64().unwrap();
    let f =
        c.ws.recv_where("the agent's file", |f| {
            f["type"] == "message" && f["attachment"]["id"] == pdf_id
        })
        .await;
    assert_eq!(f["attachment"]["name"], "Invoice 42.pdf");
    let mine = download(&app, &att_path(pdf_id), &c.visitor.token).await;
    assert_eq!((mine.status, mine.body), (200, pdf));

    // The history carries both.
    let (_, history) = app
        .get(
            &format!("/api/tickets/{}/messages", c.ticket),
            Some(&grace.token),
        )
        .await;
    let ids: Vec<i64> = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["attachment"]["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![id, pdf_id]);

    // A foreign agent is refused, and the refusal audited; another customer sees nothing.
    let mallory = app.agent("mallory").await;
    let no = download(&app, &att_path(id), &mallory.token).await;
    assert_eq!(no.status, 403, "{}", no.json());
    let other = app.visitor().await;
    let no = download(&app, &att_path(id), &other.token).await;
    assert_eq!(no.status, 404);
    let no = download(&app, &att_path(id), "dgs_not-a-session").await;
    assert_eq!(no.status, 401);
    // Mallory may not attach to Grace's ticket either.
    let no = agent_upload(&app, &mallory, c.ticket, "image/png", "x.png", png(b"x")).await;
    assert_eq!(no.status, 404, "{}", no.json());

    let reads = app.audit("action=attachment_read").await;
    let by = |who: i64, outcome: &str| {
        reads
            .iter()
            .filter(|e| e["actor"] == who && e["outcome"] == outcome)
            .count()
    };
    assert_eq!(by(grace.id, "allowed"), 1, "{reads:?}");
    assert_eq!(by(mallory.id, "denied"), 1, "{reads:?}");
    assert!(
        reads.iter().all(|e| e["object_kind"] == "attachment"),
        "{reads:?}"
    );
    assert!(
        reads.iter().all(|e| e["customer"] == c.visitor.customer_id),
        "{reads:?}"
    );

    // A retried upload with the same client id is stored once.
    let again = |cid: &'static str| {
        app.http
            .post(app.url("/api/visitor/attachments"))
            .bearer_auth(&c.visitor.token)
            .header("content-type", "text/plain")
            .header("x-file-name", "notes.txt")
            .header("x-client-id", cid)
            .body("order 1234 arrived broken")
            .send()
    };
    let first = again("up-1").await.unwrap();
    assert_eq!(first.status(), 201);
    let second = again("up-1").await.unwrap();
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["duplicate"], true);
}

#[tokio::test]
async fn wrong_files_are_refused_with_clear_errors() {
    let app = TestApp::builder()
        .config(|c| c.attachment_max_bytes = 64 * 1024)
        .start()
        .await;
    let (grace, mut g, mut c) = claimed(&app).await;

    let big = customer_upload(&app, &c, "image/png", "big.png", png(&vec![7u8; 64 * 1024])).await;
    assert_eq!(
        (big.status, big.code().as_str()),
        (413, "too_large"),
        "{}",
        big.json()
    );
    let fake = customer_upload(
        &app,
        &c,
        "image/png",
        "fake.png",
        b"MZ\x90\0 an executable".to_vec(),
    )
    .await;
    assert_eq!((fake.status, fake.code().as_str()), (422, "type_mismatch"));
    assert!(fake.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("image/png"));
    let html = customer_upload(&app, &c, "text/html", "page.html", b"<script>".to_vec()).await;
    assert_eq!(
        (html.status, html.code().as_str()),
        (415, "unsupported_type")
    );
    let svg = agent_upload(
        &app,
        &grace,
        c.ticket,
        "image/svg+xml",
        "a.svg",
        b"<svg/>".to_vec(),
    )
    .await;
    assert_eq!(svg.status, 415);
    let empty = customer_upload(&app, &c, "text/plain", "empty.txt", Vec::new()).await;
    assert_eq!((empty.status, empty.code().as_str()), (400, "invalid"));
    let anon = app
        .http
        .post(app.url("/api/visitor/attachments"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);

    // A text file with a card number is withheld as a message is: the sender is told, the
    // agent sees the placeholder, the audit log has the event, nothing of the file is kept.
    let card = "4111 1111 1111 1111";
    let text = format!("my card is {card}, please refund\n");
    let blocked = customer_upload(&app, &c, "text/plain", "card.txt", text.into_bytes()).await;
    assert_eq!(
        (blocked.status, blocked.code().as_str()),
        (422, "blocked"),
        "{}",
        blocked.json()
    );
    let why = blocked.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(why.contains("ending 1111") && !why.contains(card), "{why}");
    let f = g
        .recv_where("the placeholder", |f| {
            f["type"] == "message" && f["blocked"] == true
        })
        .await;
    assert!(f.get("attachment").is_none(), "{f}");
    c.ws.recv_where("the placeholder", |f| {
        f["type"] == "message" && f["blocked"] == true
    })
    .await;
    // A card number in the name is caught too.
    let named = agent_upload(
        &app,
        &grace,
        c.ticket,
        "image/png",
        &format!("{card}.png"),
        png(b"x"),
    )
    .await;
    assert_eq!((named.status, named.code().as_str()), (422, "blocked"));
    assert_eq!(app.audit("action=card_number_blocked").await.len(), 2);
    let stored = app.db_i64("SELECT COUNT(*) FROM attachments").await;
    assert_eq!(stored, 0, "no refused file is stored");
    // Nothing of any refused file reached the conversation as a file.
    for f in g.drain(QUIET).await {
        assert!(f.get("attachment").is_none(), "{f}");
    }
}

#[tokio::test]
async fn an_attached_canary_is_nowhere_on_disk() {
    let app = TestApp::start().await;
    let (grace, _g, c) = claimed(&app).await;
    let in_text = canary("attachtext");
    let in_png = canary("attachpng");
    let in_name = canary("attachname");
    // Larger than one segment, so several are sealed.
    let long = format!("{}\n{in_text}\n", "lorem ipsum ".repeat(12_000));
    let up = customer_upload(
        &app,
        &c,
        "text/plain",
        &format!("{in_name}.txt"),
        long.clone().into_bytes(),
    )
    .await;
    assert_eq!(up.status, 201, "{}", up.json());
    let id = up.json()["message"]["attachment"]["id"].as_i64().unwrap();
    let up = agent_upload(
        &app,
        &grace,
        c.ticket,
        "image/png",
        "shot.png",
        png(in_png.as_bytes()),
    )
    .await;
    assert_eq!(up.status, 201, "{}", up.json());
    // Authorised readers get it back in clear.
    let got = download(&app, &att_path(id), &grace.token).await;
    assert_eq!(got.body, long.as_bytes());

    // Positive control: the same search finds a value stored in clear.
    let control = canary("attachcontrol");
    app.app
        .store
        .put_setting("attachment-test-control", control.as_bytes())
        .await
        .unwrap();
    assert!(!files_containing(app.data_dir(), &control).is_empty());
    for needle in [&in_text, &in_png, &in_name] {
        let leaks = files_containing(app.data_dir(), needle);
        assert!(leaks.is_empty(), "{needle} found in clear in {leaks:?}");
    }
    let mut app = app;
    app.stop().await;
    let mut conn = db(&app).await;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    for needle in [&in_text, &in_png, &in_name] {
        let leaks = files_containing(app.data_dir(), needle);
        assert!(
            leaks.is_empty(),
            "{needle} found in clear in {leaks:?} after a checkpoint"
        );
    }
}

#[tokio::test]
async fn a_closed_tickets_file_opens_only_through_a_grant_and_is_audited() {
    let app = TestApp::start().await;
    let (grace, mut g, c) = claimed(&app).await;
    let shot = png(b"evidence");
    let up = customer_upload(&app, &c, "image/png", "evidence.png", shot.clone()).await;
    let id = up.json()["message"]["attachment"]["id"].as_i64().unwrap();
    let ok = g
        .request(json!({"type": "resolve", "ticket": c.ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    app.clock.advance(73 * HOUR);
    assert_eq!(app.close_resolved().await, vec![c.ticket]);

    let sam = app.staff("sam", "supervisor", 5).await;
    let april = app.staff("april", "approver", 5).await;
    let grace = app.login(&grace.username).await;
    for who in [&grace, &sam] {
        let no = download(&app, &att_path(id), &who.token).await;
        assert_eq!(no.status, 403, "closed: only through a grant");
    }
    let (status, grant) = app
        .post(
            "/api/grants",
            Some(&sam.token),
            json!({"kind": "transcript", "object": c.ticket, "reason": "chargeback dispute #4411 evidence"}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    let grant = grant["id"].as_i64().unwrap();
    let through = format!("/api/grants/{grant}/attachments/{id}");
    let pending = download(&app, &through, &sam.token).await;
    assert_eq!(pending.status, 409, "a pending request opens nothing");
    let (status, body) = app
        .post(
            &format!("/api/grants/{grant}/approve"),
            Some(&april.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The transcript lists the file; the grant opens it for its holder only.
    let (_, t) = app
        .get(&format!("/api/grants/{grant}/transcript"), Some(&sam.token))
        .await;
    assert!(
        t["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["attachment"]["id"] == id),
        "{t}"
    );
    let got = download(&app, &through, &sam.token).await;
    assert_eq!((got.status, got.body), (200, shot));
    let other = app.staff("sue", "supervisor", 5).await;
    assert_eq!(download(&app, &through, &other.token).await.status, 403);

    let reads = app.audit("action=attachment_read").await;
    let allowed: Vec<&Value> = reads.iter().filter(|e| e["outcome"] == "allowed").collect();
    assert_eq!(allowed.len(), 1, "{reads:?}");
    assert_eq!(allowed[0]["actor"], sam.id);
    assert_eq!(allowed[0]["object_id"], id);
    assert!(allowed[0]["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("grant={grant}")));
    let denied = reads.iter().filter(|e| e["outcome"] == "denied").count();
    assert_eq!(denied, 4, "grace, sam, the pending read and sue: {reads:?}");

    // Once the grant expires, nothing opens.
    app.clock.advance(2 * HOUR);
    let sam = app.login(&sam.username).await;
    assert_eq!(download(&app, &through, &sam.token).await.status, 409);
}

#[tokio::test]
async fn retention_shreds_a_file_with_its_transcript() {
    let app = TestApp::builder()
        .reopen_window(HOUR)
        .config(|c| {
            c.retention = c.retention.clone().with(
                recorder::retention::TRANSCRIPT,
                Duration::from_secs(24 * 3600),
            )
        })
        .start()
        .await;
    let (_, mut g, c) = claimed(&app).await;
    let up = customer_upload(
        &app,
        &c,
        "text/plain",
        "receipt.txt",
        b"receipt 77".to_vec(),
    )
    .await;
    let id = up.json()["message"]["attachment"]["id"].as_i64().unwrap();
    assert_eq!(
        download(&app, &att_path(id), &c.visitor.token).await.status,
        200
    );
    g.request(json!({"type": "resolve", "ticket": c.ticket}))
        .await;
    app.clock.advance(2 * HOUR);
    deskgate::server::sweep(&app.app).await;
    app.clock.advance(2 * 24 * HOUR);
    deskgate::server::sweep(&app.app).await;
    assert_eq!(app.audit("action=transcript_shredded").await.len(), 1);
    let gone = download(&app, &att_path(id), &c.visitor.token).await;
    assert_eq!(
        (gone.status, gone.code().as_str()),
        (410, "deleted"),
        "{}",
        gone.json()
    );
    // Nor after a restart: the key is destroyed, not only forgotten.
    let app = app.restart().await;
    let gone = download(&app, &att_path(id), &c.visitor.token).await;
    assert_eq!(gone.status, 410);
}

#[tokio::test]
async fn an_altered_or_cut_file_is_refused_not_served() {
    let app = TestApp::start().await;
    let (grace, _g, c) = claimed(&app).await;
    let small = customer_upload(&app, &c, "text/plain", "a.txt", b"short and sweet".to_vec()).await;
    let small = small.json()["message"]["attachment"]["id"]
        .as_i64()
        .unwrap();
    // Three segments of 64 KiB.
    let big: Vec<u8> = (0..150_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let up = customer_upload(&app, &c, "text/plain", "b.txt", big.clone()).await;
    let big_id = up.json()["message"]["attachment"]["id"].as_i64().unwrap();
    let cut_id = {
        let up = customer_upload(&app, &c, "text/plain", "c.txt", big.clone()).await;
        up.json()["message"]["attachment"]["id"].as_i64().unwrap()
    };
    assert_eq!(
        download(&app, &att_path(big_id), &grace.token).await.body,
        big
    );

    let mut conn = db(&app).await;
    let flip = |id: i64, at: i64| {
        sqlx::query(
            "UPDATE attachments SET content = substr(content, 1, ?1) || \
             X'FF' || substr(content, ?1 + 2) WHERE id = ?2",
        )
        .bind(at)
        .bind(id)
    };
    // A byte of the only segment.
    flip(small, 40).execute(&mut conn).await.unwrap();
    let bad = download(&app, &att_path(small), &grace.token).await;
    assert_eq!(
        (bad.status, bad.code().as_str()),
        (500, "corrupt"),
        "{}",
        bad.json()
    );
    // A byte of the middle segment: the answer starts, and is cut before its length.
    flip(big_id, 31 + 65_552 + 100)
        .execute(&mut conn)
        .await
        .unwrap();
    let bad = download(&app, &att_path(big_id), &grace.token).await;
    assert_ne!(bad.body, big, "an altered file is never served whole");
    assert!(
        bad.body == b"<cut>" || bad.status != 200,
        "status {}",
        bad.status
    );
    // The last segment dropped.
    sqlx::query("UPDATE attachments SET content = substr(content, 1, 31 + 2 * 65552) WHERE id = ?")
        .bind(cut_id)
        .execute(&mut conn)
        .await
        .unwrap();
    let bad = download(&app, &att_path(cut_id), &grace.token).await;
    assert_eq!((bad.status, bad.code().as_str()), (500, "corrupt"));
}
