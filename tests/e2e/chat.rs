//! A customer and an agent talk through the gateway.

use deskgate_tests::TestApp;
use serde_json::json;

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
