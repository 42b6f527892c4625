//! The card-number screen in the chat path: a message carrying a card number is withheld from
//! everyone and never stored; the conversation shows a placeholder instead.

use deskgate_tests::{metric, TestApp, WsClient};
use serde_json::{json, Value};
use std::time::Duration;

const VISA: &str = "4111 1111 1111 1111";
const VISA_DIGITS: &str = "4111111111111111";

/// Sends a chat message and returns the direct reply: `ack` or `blocked`.
async fn send(ws: &mut WsClient, ticket: Option<i64>, client_id: &str, text: &str) -> Value {
    let mut frame = json!({"type": "send", "client_id": client_id, "text": text});
    if let Some(t) = ticket {
        frame["ticket"] = json!(t);
    }
    ws.send(frame).await;
    let id = client_id.to_string();
    ws.recv_where("ack or blocked", move |f| {
        (f["type"] == "ack" || f["type"] == "blocked") && f["client_id"] == id.as_str()
    })
    .await
}

/// Every byte of the data dir: the database, its WAL, everything beside them.
fn data_dir_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.extend(std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// An agent holding a fresh ticket, and the customer on the other end.
async fn conversation(app: &TestApp) -> (WsClient, WsClient, i64) {
    let grace = app.agent("grace").await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    let opened = app
        .customer_with_ticket("Hello, a question about my order")
        .await;
    agent
        .send(json!({"type": "claim", "ticket": opened.ticket}))
        .await;
    agent.recv_type("ok").await;
    (opened.ws, agent, opened.ticket)
}

#[tokio::test]
async fn a_customer_card_number_is_withheld_and_the_agent_sees_a_placeholder() {
    let app = TestApp::start().await;
    let (mut customer, mut agent, ticket) = conversation(&app).await;

    let reply = send(
        &mut customer,
        None,
        "c-card",
        &format!("my card is {VISA} exp 12/29"),
    )
    .await;
    assert_eq!(reply["type"], "blocked", "{reply}");
    assert_eq!(reply["reason"], "card_number");
    assert_eq!(reply["findings"][0]["brand"], "visa");
    assert_eq!(reply["findings"][0]["last4"], "1111");
    let text = reply.to_string();
    assert!(
        !text.contains(VISA_DIGITS) && !text.contains("4111 1111 1111"),
        "{text}"
    );
    let seq = reply["seq"].as_i64().unwrap();

    let placeholder = agent
        .recv_where("placeholder", |f| {
            f["type"] == "message" && f["blocked"] == true
        })
        .await;
    assert_eq!(placeholder["ticket"], ticket);
    assert_eq!(placeholder["seq"], seq);
    assert_eq!(placeholder["from"]["kind"], "customer");
    assert!(!placeholder["text"].as_str().unwrap().contains("4111"));

    // The conversation goes on with gap-free sequence numbers.
    let ack = send(
        &mut customer,
        None,
        "c-after",
        "sorry, I will not send that",
    )
    .await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["seq"], seq + 1);

    // Nowhere on disk, in any form typed.
    let bytes = data_dir_bytes(app.data_dir());
    assert!(!contains(&bytes, VISA_DIGITS) && !contains(&bytes, VISA));

    // REST history shows the placeholder too.
    let admin = app.admin().await;
    let (_, msgs) = app
        .get(
            &format!("/api/tickets/{ticket}/messages"),
            Some(&admin.token),
        )
        .await;
    let texts = msgs.to_string();
    assert!(!texts.contains("4111"), "{texts}");
    assert!(msgs
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["blocked"] == true));

    let metrics = app.metrics().await;
    assert_eq!(
        metric(&metrics, "deskgate_messages_blocked_total"),
        Some(1.0)
    );
}

#[tokio::test]
async fn an_agent_cannot_paste_a_card_number_to_the_customer() {
    let app = TestApp::start().await;
    let (mut customer, mut agent, ticket) = conversation(&app).await;

    let reply = send(
        &mut agent,
        Some(ticket),
        "a-card",
        "Use this one: 5555-5555-5555-4444",
    )
    .await;
    assert_eq!(reply["type"], "blocked");
    assert_eq!(reply["findings"][0]["brand"], "mastercard");
    assert_eq!(reply["findings"][0]["last4"], "4444");

    let placeholder = customer
        .recv_where("placeholder", |f| {
            f["type"] == "message" && f["blocked"] == true
        })
        .await;
    assert_eq!(placeholder["from"]["kind"], "agent");
    let frames = customer.drain(Duration::from_millis(300)).await;
    assert!(!serde_json::to_string(&frames).unwrap().contains("5555"));
}

#[tokio::test]
async fn a_card_number_split_over_two_messages_blocks_the_second() {
    let app = TestApp::start().await;
    let (mut customer, mut agent, _) = conversation(&app).await;

    let first = send(&mut customer, None, "c-1", "my card is 4111 1111").await;
    assert_eq!(
        first["type"], "ack",
        "half a number is not a card number: {first}"
    );
    let second = send(&mut customer, None, "c-2", "1111 1111").await;
    assert_eq!(second["type"], "blocked", "{second}");
    assert_eq!(second["findings"][0]["last4"], "1111");

    agent
        .recv_where("first half", |f| {
            f["type"] == "message" && f["client_id"] == "c-1"
        })
        .await;
    let placeholder = agent
        .recv_where("second", |f| {
            f["type"] == "message" && f["client_id"] == "c-2"
        })
        .await;
    assert_eq!(placeholder["blocked"], true);
    assert!(!placeholder["text"].as_str().unwrap().contains("1111"));
}

#[tokio::test]
async fn numbers_that_are_not_card_numbers_pass() {
    let app = TestApp::start().await;
    let (mut customer, _agent, _) = conversation(&app).await;
    for (i, text) in [
        "my order is 2026-4471-9920, call +1 (415) 555-0132",
        "card ending **** **** **** 1111, ticket #1234567890123",
        "4111 1111 1111 1112 is that right?",
        "paid 1,299.00 on 2026-11-21 at 10:04",
    ]
    .iter()
    .enumerate()
    {
        let reply = send(&mut customer, None, &format!("ok-{i}"), text).await;
        assert_eq!(reply["type"], "ack", "{text}: {reply}");
    }
}

#[tokio::test]
async fn a_card_number_in_a_new_conversation_and_in_any_script_is_withheld() {
    let app = TestApp::start().await;
    let visitor = app.visitor().await;
    let (mut customer, _) = app.customer_ws(&visitor).await;
    // Arabic-Indic digits, the first message of a conversation.
    let reply = send(
        &mut customer,
        None,
        "c-ar",
        "رقم بطاقتي ٤١١١ ١١١١ ١١١١ ١١١١",
    )
    .await;
    assert_eq!(reply["type"], "blocked", "{reply}");
    assert_eq!(reply["seq"], 1);
    let bytes = data_dir_bytes(app.data_dir());
    assert!(!contains(&bytes, "٤١١١ ١١١١ ١١١١ ١١١١"));
}

#[tokio::test]
async fn a_retried_withheld_message_is_withheld_again_and_stored_once() {
    let app = TestApp::start().await;
    let (mut customer, mut agent, _) = conversation(&app).await;
    let text = format!("card {VISA}");
    let first = send(&mut customer, None, "c-retry", &text).await;
    let again = send(&mut customer, None, "c-retry", &text).await;
    assert_eq!(first["type"], "blocked");
    assert_eq!(again["type"], "blocked");
    assert_eq!(first["seq"], again["seq"]);
    let placeholders: Vec<Value> = agent
        .drain(Duration::from_millis(400))
        .await
        .into_iter()
        .filter(|f| f["type"] == "message" && f["blocked"] == true)
        .collect();
    assert_eq!(placeholders.len(), 1, "{placeholders:?}");
}

#[tokio::test]
async fn a_note_with_a_card_number_is_refused_and_not_stored() {
    let app = TestApp::start().await;
    let (_customer, mut agent, ticket) = conversation(&app).await;
    agent
        .send(
            json!({"type": "note", "ref": "n1", "ticket": ticket, "client_id": "n-1",
                     "text": "customer read out 3782 822463 10005"}),
        )
        .await;
    let reply = agent.recv_where("blocked note", |f| f["ref"] == "n1").await;
    assert_eq!(reply["type"], "blocked");
    assert_eq!(reply["findings"][0]["brand"], "american-express");
    assert!(reply.get("seq").is_none());
    let admin = app.admin().await;
    let (_, notes) = app
        .get(&format!("/api/tickets/{ticket}/notes"), Some(&admin.token))
        .await;
    assert_eq!(notes, json!([]));
}

#[test]
fn deskgate_scan_answers_each_json_line_in_order() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(crate::config::deskgate_binary())
        .arg("scan")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = [
        r#"{"text": "card 4111-1111-1111-1111 please"}"#,
        r#"{"text": "no card here, order 2026-11-21"}"#,
        r#"not json"#,
        r#"{"text": "my card is 4111 1111", "conversation": "c1"}"#,
        r#"{"text": "1111 1111", "conversation": "c1"}"#,
    ]
    .join("\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(lines[0]["blocked"], true);
    assert_eq!(lines[0]["findings"][0]["brand"], "visa");
    assert_eq!(lines[0]["findings"][0]["start"], 5);
    assert_eq!(lines[0]["findings"][0]["end"], 24);
    assert_eq!(lines[0]["findings"][0]["masked"], "411111******1111");
    assert_eq!(lines[1], json!({"blocked": false, "findings": []}));
    assert!(lines[2]["error"].is_string());
    assert_eq!(lines[3]["blocked"], false);
    assert_eq!(
        lines[4]["blocked"], true,
        "split number completed: {}",
        lines[4]
    );
    let all = serde_json::to_string(&lines).unwrap();
    assert!(!all.contains("4111111111111111"));
}
