//! A customer and an agent talk through the gateway: messages both ways, typing indicators,
//! read receipts, and every tab and device of each side kept in sync.

use deskgate_tests::{TestApp, WsClient};
use serde_json::{json, Value};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);

fn is_message_text(f: &Value, text: &str) -> bool {
    f["type"] == "message" && f["text"] == text
}

async fn recv_text(ws: &mut WsClient, text: &str) -> Value {
    ws.recv_where(&format!("message {text:?}"), |f| is_message_text(f, text))
        .await
}

#[tokio::test]
async fn customer_message_opens_ticket_agent_claims_and_replies() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let (mut agent, welcome) = app.agent_ws(&grace).await;
    assert_eq!(welcome["user"]["username"], "grace");
    let visitor = app.visitor().await;
    let (mut customer, welcome) = app.customer_ws(&visitor).await;
    assert_eq!(welcome["conversation"], json!(null));

    let ack = customer
        .send_text(None, "c-1", "Hello, my parcel is late")
        .await;
    assert_eq!(ack["seq"], 1);
    let ticket = ack["ticket"].as_i64().unwrap();

    let queued = agent
        .recv_where("queue upsert", |f| {
            f["type"] == "queue" && f["op"] == "upsert"
        })
        .await;
    assert_eq!(queued["ticket"]["id"], ticket);
    assert_eq!(queued["ticket"]["subject"], "Hello, my parcel is late");

    agent
        .send(json!({"type": "claim", "ref": "r1", "ticket": ticket}))
        .await;
    let ok = agent.recv_type("ok").await;
    assert_eq!(ok["ref"], "r1");
    assert_eq!(ok["ticket"]["status"], "assigned");

    let ack = agent
        .send_text(Some(ticket), "a-1", "Hi Ada, let me look.")
        .await;
    let reply = customer
        .recv_where("agent reply", |f| {
            f["type"] == "message" && f["from"]["kind"] == "agent"
        })
        .await;
    assert_eq!(reply["text"], "Hi Ada, let me look.");
    assert_eq!(reply["seq"], ack["seq"]);
}

#[tokio::test]
async fn messages_flow_both_ways_with_their_authors() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket("Where is my order?").await;
    let ok = agent
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");

    agent
        .send_text(Some(c.ticket), "a-1", "Let me check that for you.")
        .await;
    let at_customer = recv_text(&mut c.ws, "Let me check that for you.").await;
    assert_eq!(at_customer["ticket"], c.ticket);
    assert_eq!(at_customer["conversation"], c.conversation);
    assert_eq!(
        at_customer["from"],
        json!({"kind": "agent", "id": grace.id, "name": "grace"})
    );

    let ack = c.ws.send_text(None, "c-2", "Order 1234, thanks").await;
    let at_agent = recv_text(&mut agent, "Order 1234, thanks").await;
    assert_eq!(at_agent["seq"], ack["seq"]);
    assert_eq!(at_agent["client_id"], "c-2");
    assert_eq!(
        at_agent["from"],
        json!({"kind": "customer", "id": c.visitor.customer_id, "name": "Ada"})
    );
}

#[tokio::test]
async fn typing_reaches_the_other_side_and_is_not_echoed() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket("Hello").await;
    agent
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;

    c.ws.send(json!({"type": "typing", "active": true})).await;
    let t = agent.recv_type("typing").await;
    assert_eq!(t["ticket"], c.ticket);
    assert_eq!(t["active"], true);
    assert_eq!(t["from"]["kind"], "customer");
    assert_eq!(t["from"]["name"], "Ada");
    c.ws.expect_none("typing", QUIET).await;

    agent
        .send(json!({"type": "typing", "ticket": c.ticket, "active": true}))
        .await;
    let t = c.ws.recv_type("typing").await;
    assert_eq!(t["from"]["kind"], "agent");
    assert_eq!(t["from"]["name"], "grace");
    agent.expect_none("typing", QUIET).await;

    c.ws.send(json!({"type": "typing", "active": false})).await;
    let t = agent.recv_type("typing").await;
    assert_eq!(t["active"], false);
}

#[tokio::test]
async fn typing_of_one_tab_shows_in_the_customers_other_tab() {
    let app = TestApp::start().await;
    let mut c = app.customer_with_ticket("Hello").await;
    let (mut other_tab, _) = app.customer_ws(&c.visitor).await;
    c.ws.send(json!({"type": "typing", "active": true})).await;
    let t = other_tab.recv_type("typing").await;
    assert_eq!(t["from"]["kind"], "customer");
    c.ws.expect_none("typing", QUIET).await;
}

#[tokio::test]
async fn read_receipts_are_relayed_and_kept_for_reconnecting_clients() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket("Hello").await;
    agent
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    // 1: the customer's message, 2: "grace joined", 3: the reply.
    let reply = agent.send_text(Some(c.ticket), "a-1", "Hi!").await;
    assert_eq!(reply["seq"], 3);
    recv_text(&mut c.ws, "Hi!").await;

    c.ws.send(json!({"type": "read", "seq": 3})).await;
    let r = agent.recv_type("read").await;
    assert_eq!(
        (&r["ticket"], &r["by"], &r["seq"]),
        (&json!(c.ticket), &json!("customer"), &json!(3))
    );

    agent
        .send(json!({"type": "read", "ticket": c.ticket, "seq": 1}))
        .await;
    let r =
        c.ws.recv_where("agent's receipt", |f| {
            f["type"] == "read" && f["by"] == "agent"
        })
        .await;
    assert_eq!(r["seq"], 1);

    // A read receipt never moves backwards.
    c.ws.send(json!({"type": "read", "seq": 2})).await;
    let r = agent
        .recv_where("customer's receipt", |f| {
            f["type"] == "read" && f["by"] == "customer"
        })
        .await;
    assert_eq!(r["seq"], 3);

    agent.close().await;
    c.ws.close().await;
    let (_agent, welcome) = app.agent_ws(&grace).await;
    let t = &welcome["assigned"][0];
    assert_eq!(t["id"], c.ticket);
    assert_eq!(t["customer_read_seq"], 3);
    assert_eq!(t["agent_read_seq"], 1);

    let (_customer, welcome) = app.customer_ws(&c.visitor).await;
    let open = &welcome["conversation"];
    assert_eq!(open["ticket"], c.ticket);
    assert_eq!(open["customer_read_seq"], 3);
    assert_eq!(open["agent_read_seq"], 1);
}

#[tokio::test]
async fn a_tab_opened_before_the_first_message_follows_the_new_conversation() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    let visitor = app.visitor().await;
    let (mut tab_a, _) = app.customer_ws(&visitor).await;
    let (mut tab_b, welcome_b) = app.customer_ws(&visitor).await;
    assert_eq!(welcome_b["conversation"], json!(null));

    let ack = tab_a.send_text(None, "a-1", "Hello from tab A").await;
    let ticket = ack["ticket"].as_i64().unwrap();
    let conversation = ack["conversation"].as_i64().unwrap();
    for tab in [&mut tab_a, &mut tab_b] {
        let t = tab.recv_type("ticket").await;
        assert_eq!(t["ticket"]["id"], ticket);
        assert_eq!(t["ticket"]["status"], "queued");
    }

    agent
        .request(json!({"type": "claim", "ticket": ticket}))
        .await; // seq 2: grace joined
    agent.send_text(Some(ticket), "g-1", "Hi Ada").await; // seq 3
    let ack = tab_b.send_text(None, "b-1", "And from tab B").await;
    assert_eq!(ack["ticket"], ticket, "both tabs write to one conversation");
    assert_eq!(ack["seq"], 4);
    let in_agent = recv_text(&mut agent, "And from tab B").await;
    assert_eq!(in_agent["seq"], 4);

    // Each tab holds the whole conversation, each message once, in order.
    let want = [
        "Hello from tab A",
        "grace joined the conversation",
        "Hi Ada",
        "And from tab B",
    ];
    for tab in [&mut tab_a, &mut tab_b] {
        let seen = tab.messages_until(conversation, 4).await;
        let texts: Vec<&str> = seen.iter().map(|m| m["text"].as_str().unwrap()).collect();
        assert_eq!(texts, want);
        let seqs: Vec<i64> = seen.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        let more = tab.drain(QUIET).await;
        assert!(!more.iter().any(|f| f["type"] == "message"), "{more:?}");
    }
}

#[tokio::test]
async fn the_agents_other_device_sees_the_claimed_ticket_and_its_messages() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let phone = app.login("grace").await;
    let (mut desktop, _) = app.agent_ws(&grace).await;
    let (mut mobile, _) = app.agent_ws(&phone).await;
    let mut c = app.customer_with_ticket("Hello").await;

    let ok = desktop
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    assert_eq!(ok["type"], "ok");
    let t = mobile
        .recv_where("ticket assigned", |f| {
            f["type"] == "ticket" && f["ticket"]["status"] == "assigned"
        })
        .await;
    assert_eq!(t["ticket"]["id"], c.ticket);
    assert_eq!(t["ticket"]["agent"]["id"], grace.id);

    c.ws.send_text(None, "c-2", "Are you there?").await;
    recv_text(&mut desktop, "Are you there?").await;
    recv_text(&mut mobile, "Are you there?").await;

    let ack = desktop.send_text(Some(c.ticket), "g-1", "Yes!").await;
    let seen = recv_text(&mut mobile, "Yes!").await;
    assert_eq!(seen["seq"], ack["seq"]);
    recv_text(&mut c.ws, "Yes!").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_sending_first_at_once_open_one_ticket() {
    let app = TestApp::start().await;
    let visitor = app.visitor().await;
    let (mut tab_a, _) = app.customer_ws(&visitor).await;
    let (mut tab_b, _) = app.customer_ws(&visitor).await;
    let (a, b) = tokio::join!(
        tab_a.send_text(None, "a-1", "from A"),
        tab_b.send_text(None, "b-1", "from B")
    );
    assert_eq!(a["ticket"], b["ticket"]);
    let mut seqs = [a["seq"].as_i64().unwrap(), b["seq"].as_i64().unwrap()];
    seqs.sort();
    assert_eq!(seqs, [1, 2]);
    for tab in [&mut tab_a, &mut tab_b] {
        let seen = tab
            .messages_until(a["conversation"].as_i64().unwrap(), 2)
            .await;
        let seqs: Vec<i64> = seen.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, [1, 2]);
    }
}
