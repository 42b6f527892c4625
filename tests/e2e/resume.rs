//! Sequence numbers, acknowledgements, idempotent retries, and resuming after a reconnect or a
//! gateway restart: no gap, no duplicate.

use deskgate_tests::{Closed, Staff, TestApp, WsClient};
use serde_json::{json, Value};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);

/// Reads frames up to and including `resumed` for the conversation; returns the seqs of the
/// messages of that conversation that came before it, and the `resumed` frame.
async fn until_resumed(ws: &mut WsClient, conversation: i64) -> (Vec<i64>, Value) {
    let mut seqs = Vec::new();
    loop {
        let f = ws.recv().await.expect("frame before resumed");
        match f["type"].as_str() {
            Some("message") if f["conversation"] == conversation => {
                seqs.push(f["seq"].as_i64().unwrap())
            }
            Some("resumed") if f["conversation"] == conversation => return (seqs, f),
            _ => {}
        }
    }
}

fn message_seqs(frames: &[Value], conversation: i64) -> Vec<i64> {
    frames
        .iter()
        .filter(|f| f["type"] == "message" && f["conversation"] == conversation)
        .map(|f| f["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn seq_is_gap_free_across_customer_agent_and_system_messages() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let bob = app.agent("bob").await;
    let (mut g, _) = app.agent_ws(&grace).await;
    let (mut b, _) = app.agent_ws(&bob).await;
    let mut c = app.customer_with_ticket("one").await;
    g.request(json!({"type": "claim", "ticket": c.ticket}))
        .await; // 2: joined
    g.send_text(Some(c.ticket), "g-1", "three").await;
    c.ws.send_text(None, "c-4", "four").await;
    g.send_text(Some(c.ticket), "g-2", "five").await;
    g.request(json!({"type": "transfer", "ticket": c.ticket, "to": bob.id}))
        .await; // 6: transferred
    b.recv_where("transfer", |f| f["type"] == "ticket").await;
    b.send_text(Some(c.ticket), "b-1", "seven").await;
    b.request(json!({"type": "resolve", "ticket": c.ticket}))
        .await; // 8: resolved

    let seen = c.ws.messages_until(c.conversation, 8).await;
    let seqs: Vec<i64> = seen.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    let kinds: Vec<&str> = seen
        .iter()
        .map(|m| m["from"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["customer", "system", "agent", "customer", "agent", "system", "agent", "system"]
    );
    assert!(message_seqs(&c.ws.drain(QUIET).await, c.conversation).is_empty());

    let admin = app.admin().await;
    let (_, stored) = app
        .get(
            &format!("/api/tickets/{}/messages", c.ticket),
            Some(&admin.token),
        )
        .await;
    let stored: Vec<i64> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(stored, (1..=8).collect::<Vec<_>>());
}

#[tokio::test]
async fn ack_carries_the_committed_seq_and_a_retry_is_stored_once() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let (mut g, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket("Hello").await;
    g.request(json!({"type": "claim", "ticket": c.ticket}))
        .await;

    let ack =
        c.ws.request(json!({"type": "send", "client_id": "c-2", "text": "Is anyone there?"}))
            .await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["seq"], 3);
    assert_eq!(ack["duplicate"], false);
    assert_eq!(ack["client_id"], "c-2");
    let delivered = g
        .recv_where("the message", |f| {
            f["type"] == "message" && f["client_id"] == "c-2"
        })
        .await;
    assert_eq!(delivered["seq"], ack["seq"]);
    assert_eq!(delivered["at"], ack["at"]);

    // The connection dropped before the ack arrived; the widget retries on a new one.
    c.ws.close().await;
    let (mut retry, _) = app.customer_ws(&c.visitor).await;
    let again = retry
        .request(json!({"type": "send", "client_id": "c-2", "text": "Is anyone there?"}))
        .await;
    assert_eq!(again["type"], "ack");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["seq"], 3);
    assert_eq!(again["at"], ack["at"]);
    let at_agent = g.drain(QUIET).await;
    assert!(
        !at_agent
            .iter()
            .any(|f| f["type"] == "message" && f["client_id"] == "c-2"),
        "the retry was delivered again: {at_agent:?}"
    );

    // Agents' retries are idempotent too, and the next message takes the next seq.
    let first = g.send_text(Some(c.ticket), "g-1", "Yes!").await;
    let dup = g.send_text(Some(c.ticket), "g-1", "Yes!").await;
    assert_eq!(
        (first["seq"].clone(), dup["duplicate"].clone()),
        (json!(4), json!(true))
    );
    assert_eq!(dup["seq"], 4);
    let next = retry.send_text(None, "c-3", "Great").await;
    assert_eq!(next["seq"], 5);

    let (_, stored) = app
        .get(
            &format!("/api/tickets/{}/messages", c.ticket),
            Some(&grace.token),
        )
        .await;
    assert_eq!(stored.as_array().unwrap().len(), 5);
}

/// What [`customer_misses_messages`] leaves behind.
struct Missed {
    visitor_token: String,
    ticket: i64,
    conversation: i64,
    grace: Staff,
    agent: WsClient,
}

/// Builds a conversation the customer has seen up to seq 2, then takes the customer offline
/// while the agent writes seqs 3..=6.
async fn customer_misses_messages(app: &TestApp) -> Missed {
    let grace = app.agent("grace").await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket("one").await;
    agent
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    c.ws.messages_until(c.conversation, 2).await;
    c.ws.close().await;
    for i in 3..=6 {
        agent
            .send_text(Some(c.ticket), &format!("g-{i}"), &format!("reply {i}"))
            .await;
    }
    Missed {
        visitor_token: c.visitor.token,
        ticket: c.ticket,
        conversation: c.conversation,
        grace,
        agent,
    }
}

#[tokio::test]
async fn a_reconnecting_customer_gets_exactly_what_it_missed_then_resumed() {
    let app = TestApp::start().await;
    let Missed {
        visitor_token: token,
        ticket,
        conversation,
        ..
    } = customer_misses_messages(&app).await;

    let (mut ws, welcome) = app
        .hello(
            "/ws/customer",
            &token,
            json!([{"conversation": conversation, "after": 2}]),
        )
        .await;
    assert_eq!(welcome["conversation"]["ticket"], ticket);
    assert_eq!(welcome["conversation"]["last_seq"], 6);
    let (seqs, resumed) = until_resumed(&mut ws, conversation).await;
    assert_eq!(seqs, vec![3, 4, 5, 6]);
    assert_eq!(resumed["last_seq"], 6);
    let after = ws.drain(QUIET).await;
    assert!(message_seqs(&after, conversation).is_empty(), "{after:?}");

    // The connection then follows the conversation live.
    ws.send_text(None, "c-7", "thanks").await;
    let live = ws.messages_until(conversation, 7).await;
    assert_eq!(message_seqs(&live, conversation), vec![7]);
}

#[tokio::test]
async fn a_reconnecting_agent_gets_exactly_what_it_missed_then_resumed() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let (mut g, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket("one").await;
    g.request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    g.send_text(Some(c.ticket), "g-3", "three").await;
    g.close().await;
    for i in 4..=7 {
        c.ws.send_text(None, &format!("c-{i}"), &format!("customer {i}"))
            .await;
    }

    let (mut g, welcome) = app
        .hello(
            "/ws/agent",
            &grace.token,
            json!([{"conversation": c.conversation, "after": 3}]),
        )
        .await;
    assert_eq!(welcome["assigned"][0]["id"], c.ticket);
    let (seqs, resumed) = until_resumed(&mut g, c.conversation).await;
    assert_eq!(seqs, vec![4, 5, 6, 7]);
    assert_eq!(resumed["last_seq"], 7);
    assert!(message_seqs(&g.drain(QUIET).await, c.conversation).is_empty());
}

#[tokio::test]
async fn resume_works_across_a_gateway_restart_for_customer_and_agent() {
    let app = TestApp::start().await;
    let Missed {
        visitor_token: token,
        ticket,
        conversation,
        grace,
        agent,
    } = customer_misses_messages(&app).await;
    drop(agent);
    let app = app.restart().await;

    let (mut customer, welcome) = app
        .hello(
            "/ws/customer",
            &token,
            json!([{"conversation": conversation, "after": 2}]),
        )
        .await;
    assert_eq!(welcome["conversation"]["last_seq"], 6);
    let (seqs, resumed) = until_resumed(&mut customer, conversation).await;
    assert_eq!(seqs, vec![3, 4, 5, 6]);
    assert_eq!(resumed["last_seq"], 6);

    let (mut agent, welcome) = app
        .hello(
            "/ws/agent",
            &grace.token,
            json!([{"conversation": conversation, "after": 4}]),
        )
        .await;
    assert_eq!(welcome["assigned"][0]["id"], ticket);
    let (seqs, _) = until_resumed(&mut agent, conversation).await;
    assert_eq!(seqs, vec![5, 6]);

    // And the conversation carries on where it was.
    let ack = customer.send_text(None, "c-7", "still here").await;
    assert_eq!(ack["seq"], 7);
    let live = agent.messages_until(conversation, 7).await;
    assert_eq!(message_seqs(&live, conversation), vec![7]);
}

#[tokio::test]
async fn a_closed_conversation_can_be_resumed_without_following_it() {
    let app = TestApp::builder()
        .reopen_window(Duration::from_secs(60))
        .start()
        .await;
    let grace = app.agent("grace").await;
    let (mut g, _) = app.agent_ws(&grace).await;
    let c = app.customer_with_ticket("old").await;
    g.request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    g.request(json!({"type": "resolve", "ticket": c.ticket}))
        .await;
    c.ws.close().await;
    app.clock.advance(Duration::from_secs(120));

    let (mut ws, welcome) = app
        .hello(
            "/ws/customer",
            &c.visitor.token,
            json!([{"conversation": c.conversation, "after": 1}]),
        )
        .await;
    assert_eq!(welcome["conversation"], json!(null));
    let (seqs, resumed) = until_resumed(&mut ws, c.conversation).await;
    assert_eq!(seqs, vec![2, 3]);
    assert_eq!(resumed["last_seq"], 3);

    // Another customer's conversation is not theirs to resume.
    let stranger = app.visitor().await;
    let (mut ws, _) = app
        .hello(
            "/ws/customer",
            &stranger.token,
            json!([{"conversation": c.conversation, "after": 0}]),
        )
        .await;
    let err = ws.recv_type("error").await;
    assert_eq!(err["code"], "not_found");
    assert!(message_seqs(&ws.drain(QUIET).await, c.conversation).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_during_a_replay_arrive_once_and_in_order() {
    const LIVE: i64 = 40;
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let (mut g, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket("one").await;
    g.request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    c.ws.messages_until(c.conversation, 2).await;
    c.ws.close().await;

    let ticket = c.ticket;
    let writer = tokio::spawn(async move {
        for i in 0..LIVE {
            g.send_text(Some(ticket), &format!("g-{i}"), &format!("live {i}"))
                .await;
        }
        g
    });
    let (mut ws, _) = app
        .hello(
            "/ws/customer",
            &c.visitor.token,
            json!([{"conversation": c.conversation, "after": 2}]),
        )
        .await;
    let last = 2 + LIVE;
    let mut seqs = Vec::new();
    let mut resumed = 0;
    while seqs.last() != Some(&last) {
        let f = ws.recv().await.expect("frame");
        match f["type"].as_str() {
            Some("message") => seqs.push(f["seq"].as_i64().unwrap()),
            Some("resumed") => resumed += 1,
            _ => {}
        }
    }
    writer.await.unwrap();
    assert_eq!(seqs, (3..=last).collect::<Vec<_>>());
    let rest = ws.drain(QUIET).await;
    assert!(message_seqs(&rest, c.conversation).is_empty(), "{rest:?}");
    resumed += rest.iter().filter(|f| f["type"] == "resumed").count();
    assert_eq!(resumed, 1);
}

#[tokio::test]
async fn sync_sends_an_assigned_tickets_history_then_resumed() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let (mut g, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket("one").await;
    c.ws.send_text(None, "c-2", "two").await;
    g.request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    g.send(json!({"type": "sync", "ticket": c.ticket, "after": 1}))
        .await;
    let (seqs, resumed) = until_resumed(&mut g, c.conversation).await;
    assert_eq!(seqs, vec![2, 3], "two, then grace joined");
    assert_eq!(resumed["last_seq"], 3);
}

#[tokio::test]
async fn shutting_down_closes_connections_with_1012_service_restart() {
    let mut app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket("one").await;
    let ((), customer, agent) = tokio::join!(app.stop(), c.ws.closed(), agent.closed());
    assert_eq!(customer, Closed::Code(1012));
    assert_eq!(agent, Closed::Code(1012));
}
