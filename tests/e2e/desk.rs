//! Working tickets: the claim race, capacity, transfers, internal notes and auto-assignment.

use deskgate_tests::{TestApp, WsClient};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);

async fn assigned_to(ws: &mut WsClient, ticket: i64, agent: i64) -> Value {
    ws.recv_where(&format!("ticket {ticket} assigned to {agent}"), |f| {
        f["type"] == "ticket"
            && f["ticket"]["id"] == ticket
            && f["ticket"]["status"] == "assigned"
            && f["ticket"]["agent"]["id"] == agent
    })
    .await
}

fn texts(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| f["text"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn of_two_agents_racing_for_a_ticket_exactly_one_wins() {
    const TICKETS: usize = 20;
    let app = TestApp::start().await;
    let ann = app.staff("ann", "agent", 50).await;
    let ben = app.staff("ben", "agent", 50).await;
    let (mut a, _) = app.agent_ws(&ann).await;
    let (mut b, _) = app.agent_ws(&ben).await;
    let mut tickets = Vec::new();
    for i in 0..TICKETS {
        tickets.push(app.customer_with_ticket(&format!("race {i}")).await.ticket);
    }

    // Both agents fire every claim at once, then read their replies.
    async fn claim_all(ws: &mut WsClient, tickets: &[i64]) -> HashMap<i64, Value> {
        for t in tickets {
            ws.send(json!({"type": "claim", "ref": format!("claim-{t}"), "ticket": t}))
                .await;
        }
        let mut replies = HashMap::new();
        for t in tickets {
            let r = format!("claim-{t}");
            let reply = ws.recv_where(&r, |f| f["ref"] == r.as_str()).await;
            replies.insert(*t, reply);
        }
        replies
    }
    let (ra, rb) = tokio::join!(claim_all(&mut a, &tickets), claim_all(&mut b, &tickets));

    let admin = app.admin().await;
    let (mut wins_a, mut wins_b) = (0, 0);
    for t in &tickets {
        let (x, y) = (&ra[t], &rb[t]);
        let winner = match (x["type"].as_str(), y["type"].as_str()) {
            (Some("ok"), Some("error")) => {
                assert_eq!(y["code"], "conflict", "{y}");
                wins_a += 1;
                ann.id
            }
            (Some("error"), Some("ok")) => {
                assert_eq!(x["code"], "conflict", "{x}");
                wins_b += 1;
                ben.id
            }
            _ => panic!("ticket {t}: exactly one claim must win: {x} / {y}"),
        };
        let (_, detail) = app
            .get(&format!("/api/tickets/{t}"), Some(&admin.token))
            .await;
        assert_eq!(detail["ticket"]["agent"]["id"], winner);
        assert_eq!(detail["ticket"]["status"], "assigned");
        // One "joined" message, not two.
        assert_eq!(detail["ticket"]["last_seq"], 2);
    }
    assert_eq!(wins_a + wins_b, TICKETS);
}

#[tokio::test]
async fn an_agent_at_capacity_cannot_claim_more() {
    let app = TestApp::start().await;
    let solo = app.staff("solo", "agent", 1).await;
    let (mut agent, _) = app.agent_ws(&solo).await;
    let first = app.customer_with_ticket("one").await;
    let second = app.customer_with_ticket("two").await;

    let ok = agent
        .request(json!({"type": "claim", "ticket": first.ticket}))
        .await;
    assert_eq!(ok["type"], "ok");
    let err = agent
        .request(json!({"type": "claim", "ticket": second.ticket}))
        .await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["code"], "capacity");

    agent
        .request(json!({"type": "resolve", "ticket": first.ticket}))
        .await;
    let ok = agent
        .request(json!({"type": "claim", "ticket": second.ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "resolving frees capacity: {ok}");
}

#[tokio::test]
async fn a_transferred_ticket_follows_the_new_agent_and_can_go_back_to_the_queue() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let bob = app.agent("bob").await;
    let (mut g, _) = app.agent_ws(&grace).await;
    let (mut b, _) = app.agent_ws(&bob).await;
    let mut c = app.customer_with_ticket("Billing question").await;
    g.request(json!({"type": "claim", "ticket": c.ticket}))
        .await;

    let ok = g
        .request(json!({"type": "transfer", "ticket": c.ticket, "to": bob.id}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    assert_eq!(ok["ticket"]["agent"]["id"], bob.id);
    let t = assigned_to(&mut b, c.ticket, bob.id).await;
    assert_eq!(t["ticket"]["agent"]["name"], "bob");
    let seen =
        c.ws.recv_where("customer sees the new agent", |f| {
            f["type"] == "ticket" && f["ticket"]["agent"]["name"] == "bob"
        })
        .await;
    assert_eq!(seen["ticket"]["status"], "assigned");

    c.ws.send_text(None, "c-2", "Hello bob?").await;
    let m = b
        .recv_where("message for bob", |f| {
            f["type"] == "message" && f["text"] == "Hello bob?"
        })
        .await;
    assert_eq!(m["from"]["kind"], "customer");
    let at_grace = g.drain(QUIET).await;
    assert!(
        !texts(&at_grace).contains(&"Hello bob?".to_string()),
        "the old agent no longer receives the conversation: {at_grace:?}"
    );
    let err = g
        .request(
            json!({"type": "send", "ticket": c.ticket, "client_id": "g-x", "text": "still here"}),
        )
        .await;
    assert_eq!(err["code"], "not_found");

    b.send_text(Some(c.ticket), "b-1", "Bob here").await;
    c.ws.recv_where("bob's reply", |f| {
        f["type"] == "message" && f["text"] == "Bob here"
    })
    .await;

    let ok = b
        .request(json!({"type": "transfer", "ticket": c.ticket, "to": null}))
        .await;
    assert_eq!(ok["ticket"]["status"], "queued");
    assert_eq!(ok["ticket"]["agent"], json!(null));
    let q = g
        .recv_where("back in the queue", |f| {
            f["type"] == "queue" && f["op"] == "upsert" && f["ticket"]["id"] == c.ticket
        })
        .await;
    assert_eq!(q["ticket"]["status"], "queued");
    let ok = g
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "anyone may claim it again: {ok}");
}

#[tokio::test]
async fn a_transfer_to_an_agent_at_capacity_is_refused() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let full = app.staff("full", "agent", 1).await;
    let (mut g, _) = app.agent_ws(&grace).await;
    let (mut f, _) = app.agent_ws(&full).await;
    let mine = app.customer_with_ticket("for full").await;
    f.request(json!({"type": "claim", "ticket": mine.ticket}))
        .await;
    let c = app.customer_with_ticket("for grace").await;
    g.request(json!({"type": "claim", "ticket": c.ticket}))
        .await;

    let err = g
        .request(json!({"type": "transfer", "ticket": c.ticket, "to": full.id}))
        .await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["code"], "capacity");
    let (_, detail) = app
        .get(&format!("/api/tickets/{}", c.ticket), Some(&grace.token))
        .await;
    assert_eq!(detail["ticket"]["agent"]["id"], grace.id, "still grace's");
}

#[tokio::test]
async fn internal_notes_reach_staff_and_never_the_customer() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let bob = app.agent("bob").await;
    let (mut g, _) = app.agent_ws(&grace).await;
    let (mut b, _) = app.agent_ws(&bob).await;
    let mut c = app.customer_with_ticket("Hello").await;
    g.request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    c.ws.drain(QUIET).await;

    let secret = "customer sounds like a chargeback risk";
    let ok = g
        .request(json!({"type": "note", "ticket": c.ticket, "client_id": "n-1", "text": secret}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    let note = g.recv_type("note").await;
    assert_eq!(note["text"], secret);
    assert_eq!(note["ticket"], c.ticket);
    assert_eq!(note["author"], json!({"id": grace.id, "name": "grace"}));

    // Someone else's ticket: no note.
    let err = b
        .request(json!({"type": "note", "ticket": c.ticket, "client_id": "n-2", "text": "hi"}))
        .await;
    assert_eq!(err["code"], "not_found");

    let at_customer = c.ws.drain(QUIET).await;
    assert!(
        at_customer
            .iter()
            .all(|f| f["type"] != "note" && !f.to_string().contains(secret)),
        "the customer saw the note: {at_customer:?}"
    );
    // Notes take no sequence number: the conversation goes on gap-free.
    let ack = c.ws.send_text(None, "c-2", "Still there?").await;
    assert_eq!(ack["seq"], 3);

    let (_, notes) = app
        .get(
            &format!("/api/tickets/{}/notes", c.ticket),
            Some(&grace.token),
        )
        .await;
    assert_eq!(notes.as_array().unwrap().len(), 1);
    assert_eq!(notes[0]["text"], secret);
    let (_, messages) = app
        .get(
            &format!("/api/tickets/{}/messages", c.ticket),
            Some(&grace.token),
        )
        .await;
    assert!(!messages.to_string().contains(secret));
}

#[tokio::test]
async fn auto_assignment_goes_round_robin_within_capacity() {
    let app = TestApp::builder().auto_assign().start().await;
    let ann = app.staff("ann", "agent", 2).await;
    let ben = app.staff("ben", "agent", 1).await;
    let (mut a, _) = app.agent_ws(&ann).await;
    let (mut b, _) = app.agent_ws(&ben).await;

    let t1 = app.customer_with_ticket("one").await;
    assigned_to(&mut a, t1.ticket, ann.id).await;
    let t2 = app.customer_with_ticket("two").await;
    assigned_to(&mut b, t2.ticket, ben.id).await;
    let mut t3 = app.customer_with_ticket("three").await;
    assigned_to(&mut a, t3.ticket, ann.id).await;
    // The customer learns who took it, without anyone claiming by hand.
    let seen = t3
        .ws
        .recv_where("assigned", |f| {
            f["type"] == "ticket" && f["ticket"]["status"] == "assigned"
        })
        .await;
    assert_eq!(seen["ticket"]["agent"]["name"], "ann");

    // Both agents are full: the fourth waits.
    let t4 = app.customer_with_ticket("four").await;
    for ws in [&mut a, &mut b] {
        let frames = ws.drain(QUIET).await;
        assert!(
            !frames.iter().any(|f| f["type"] == "ticket"
                && f["ticket"]["id"] == t4.ticket
                && f["ticket"]["status"] == "assigned"),
            "assigned beyond capacity: {frames:?}"
        );
    }
    let (_, detail) = app
        .get(&format!("/api/tickets/{}", t4.ticket), Some(&ann.token))
        .await;
    assert_eq!(detail["ticket"]["status"], "queued");

    // Ben frees up and gets it.
    b.request(json!({"type": "resolve", "ticket": t2.ticket}))
        .await;
    assigned_to(&mut b, t4.ticket, ben.id).await;
}
