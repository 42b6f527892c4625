//! Overload: a client that stops reading is cut off without anyone else noticing, and a store
//! that cannot commit never produces a false acknowledgement.

use deskgate_tests::{metric, Closed, TestApp};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Executor};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);
const SLOW: &str = "deskgate_closed_too_slow_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_and_nobody_else_notices() {
    // Messages go out in batches until the stalled connection's buffers are full; how many that
    // takes depends on the kernel's socket buffers.
    const BATCH: i64 = 20;
    const MOST: i64 = 1000;
    let app = TestApp::builder()
        .outbound_queue(8)
        .rate(1000, 1000)
        .start()
        .await;
    let grace = app.agent("grace").await;
    let phone = app.login("grace").await;
    let (mut stalled, _) = app.agent_ws(&grace).await;
    let (mut reader, _) = app.agent_ws(&phone).await;
    let mut c = app.customer_with_ticket("hello").await;
    let ok = stalled
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    assert_eq!(ok["type"], "ok");
    reader
        .recv_where("ticket assigned", |f| {
            f["type"] == "ticket" && f["ticket"]["status"] == "assigned"
        })
        .await;

    // The reader reads on its own, up to the message marked "final"; the stalled connection
    // is not read until the end.
    let conversation = c.conversation;
    let reading = tokio::spawn(async move {
        let mut seqs = Vec::new();
        loop {
            let m = reader
                .recv_where("message", |f| {
                    f["type"] == "message" && f["conversation"] == conversation
                })
                .await;
            seqs.push(m["seq"].as_i64().unwrap());
            if m["client_id"] == "final" {
                return seqs;
            }
        }
    });

    // 8,000 four-byte characters: 32 KB a frame, so the buffers fill with fewer round trips.
    let big = "😀".repeat(7990);
    let mut sent = 0;
    while sent < MOST {
        for _ in 0..BATCH {
            c.ws.send_text(None, &format!("c-{sent}"), &format!("{sent} {big}"))
                .await;
            sent += 1;
        }
        // The customer's own copies of its messages are not the point here.
        c.ws.take_pending();
        if metric(&app.metrics().await, SLOW).unwrap_or(0.0) >= 1.0 {
            break;
        }
    }
    assert!(sent < MOST, "the stalled connection was never closed");
    let final_seq = c.ws.send_text(None, "final", "the end").await["seq"]
        .as_i64()
        .unwrap();
    assert_eq!(final_seq, 2 + sent + 1);
    let seqs = reading.await.unwrap();
    assert_eq!(
        seqs,
        (3..=final_seq).collect::<Vec<_>>(),
        "the other device saw every message once, in order"
    );

    let how = stalled.closed().await;
    assert!(
        how == Closed::Code(4009) || how == Closed::Dropped,
        "closed with {how:?}"
    );
    // What the stalled connection did get is a gap-free start of the conversation.
    let got: Vec<i64> = stalled
        .take_pending()
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| f["seq"].as_i64().unwrap())
        .collect();
    let want: Vec<i64> = (3..3 + got.len() as i64).collect();
    assert_eq!(got, want);
    assert!(
        (got.len() as i64) < sent,
        "it cannot have received everything"
    );

    assert_eq!(
        metric(&app.metrics().await, SLOW),
        Some(1.0),
        "one connection"
    );
    let (_, welcome) = app.customer_ws(&c.visitor).await;
    assert_eq!(welcome["conversation"]["last_seq"], final_seq);
}

#[tokio::test]
async fn a_locked_store_gives_unavailable_and_no_ack_and_the_retry_lands_once() {
    let app = TestApp::builder()
        .store_busy_timeout(Duration::from_millis(200))
        .start()
        .await;
    let grace = app.agent("grace").await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket("hello").await;
    agent
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    c.ws.messages_until(c.conversation, 2).await;
    agent.drain(QUIET).await;

    let options = SqliteConnectOptions::new().filename(app.db_path());
    let mut lock = SqliteConnection::connect_with(&options).await.unwrap();
    // In WAL mode this blocks writers; readers carry on.
    lock.execute("BEGIN EXCLUSIVE").await.unwrap();

    let text = "sent while the store is locked";
    let reply =
        c.ws.request(json!({"type": "send", "client_id": "c-2", "text": text}))
            .await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "unavailable");
    let agent_reply = agent
        .request(json!({"type": "send", "ticket": c.ticket, "client_id": "g-1", "text": "hi"}))
        .await;
    assert_eq!(agent_reply["code"], "unavailable");
    let frames = c.ws.drain(QUIET).await;
    assert!(
        !frames
            .iter()
            .any(|f| f["type"] == "ack" || f["type"] == "message"),
        "nothing may be acknowledged or delivered: {frames:?}"
    );
    let frames = agent.drain(QUIET).await;
    assert!(!frames.iter().any(|f| f["type"] == "message"), "{frames:?}");
    // The connection stays open for the retry.
    let pong = c.ws.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");

    lock.execute("ROLLBACK").await.unwrap();
    lock.close().await.unwrap();

    let ack = c.ws.send_text(None, "c-2", text).await;
    assert_eq!(ack["duplicate"], false, "nothing was stored the first time");
    assert_eq!(ack["seq"], 3);
    let m = agent
        .recv_where("the retried message", |f| {
            f["type"] == "message" && f["client_id"] == "c-2"
        })
        .await;
    assert_eq!(m["seq"], 3);
    let frames = agent.drain(QUIET).await;
    assert!(
        !frames
            .iter()
            .any(|f| f["type"] == "message" && f["client_id"] == "c-2"),
        "delivered twice: {frames:?}"
    );
    let (_, stored) = app
        .get(
            &format!("/api/tickets/{}/messages", c.ticket),
            Some(&grace.token),
        )
        .await;
    let seqs: Vec<i64> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert!(metric(&app.metrics().await, "deskgate_store_errors_total").unwrap() >= 1.0);
}
