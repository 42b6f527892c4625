//! An agent's reply reaches a customer who has left: with no tab of theirs connected, it is
//! emailed to the address they gave (through the real SMTP server); while a tab is open, or
//! without an address, nothing is sent.

use deskgate_tests::smtp::SmtpServer;
use deskgate_tests::TestApp;
use serde_json::json;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(500);

/// Waits until no connection of the customer is left on the gateway (after their socket
/// closed); panics after the usual wait.
async fn gone(app: &TestApp, customer: i64) {
    let topic = deskgate::bus::Topic::Customer(deskgate::ids::CustomerId(customer));
    let deadline = tokio::time::Instant::now() + deskgate_tests::WAIT;
    while app.app.desk.hub.is_followed(topic) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the customer's tab is still there"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_reply_to_a_customer_who_left_is_emailed_to_them() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::builder().smtp(&smtp).start().await;
    let grace = app.agent("grace").await;
    let v = app
        .visitor_with(json!({"site_key": "demo", "name": "Ada", "email": "ada@example.com"}))
        .await;
    let (mut ws, welcome) = app.customer_ws(&v).await;
    assert_eq!(welcome["customer"]["email_on_file"], true, "{welcome}");
    let ack = ws.send_text(None, "m1", "Do you ship to Iceland?").await;
    let ticket = ack["ticket"].as_i64().unwrap();
    let (mut agent, _) = app.agent_ws(&grace).await;
    agent
        .request(json!({"type": "claim", "ticket": ticket}))
        .await;

    // While the customer's tab is open, the reply only goes to the chat.
    agent
        .send_text(Some(ticket), "a1", "Let me check that for you.")
        .await;
    ws.recv_where("the reply", |f| f["type"] == "message" && f["seq"] == 3)
        .await;
    tokio::time::sleep(QUIET).await;
    assert!(smtp.mails().is_empty(), "no email while the tab is open");

    ws.close().await;
    gone(&app, v.customer_id).await;
    agent
        .send_text(
            Some(ticket),
            "a2",
            "Yes, we ship to Iceland within five days.",
        )
        .await;
    let mail = smtp.wait_for(1).await.remove(0);
    assert!(mail.contains("To: ada@example.com"), "{mail}");
    assert!(
        mail.contains("Yes, we ship to Iceland within five days."),
        "{mail}"
    );
    assert!(mail.contains("grace from ACME support"), "{mail}");
    assert!(
        mail.contains("replies to this email are not read"),
        "{mail}"
    );
    assert!(
        !mail.contains("Let me check that"),
        "only the reply written while away"
    );

    // A withheld reply (a card number) is not emailed.
    agent
        .send(json!({"type": "send", "ticket": ticket, "client_id": "a3", "text": "card 4111 1111 1111 1111"}))
        .await;
    agent.recv_type("blocked").await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.mails().len(), 1, "nothing withheld is emailed");
}

#[tokio::test]
async fn without_an_address_nothing_is_emailed_and_the_widget_is_told() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::builder().smtp(&smtp).start().await;
    let grace = app.agent("grace").await;
    let v = app.visitor().await;
    let (mut ws, welcome) = app.customer_ws(&v).await;
    assert_eq!(welcome["customer"]["email_on_file"], false, "{welcome}");
    let ack = ws.send_text(None, "m1", "Hello?").await;
    let ticket = ack["ticket"].as_i64().unwrap();
    ws.close().await;
    gone(&app, v.customer_id).await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    agent
        .request(json!({"type": "claim", "ticket": ticket}))
        .await;
    agent
        .send_text(Some(ticket), "a1", "Hi, how can I help?")
        .await;
    tokio::time::sleep(QUIET).await;
    assert!(smtp.mails().is_empty());
}

#[tokio::test]
async fn a_signed_identitys_address_gets_the_reply_too() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::builder().smtp(&smtp).start().await;
    let grace = app.agent("grace").await;
    let v = app.verified_visitor("ada-1", "ada@example.com").await;
    let (mut ws, welcome) = app.customer_ws(&v).await;
    assert_eq!(welcome["customer"]["email_on_file"], true);
    let ack = ws.send_text(None, "m1", "Where is my order?").await;
    let ticket = ack["ticket"].as_i64().unwrap();
    ws.close().await;
    gone(&app, v.customer_id).await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    agent
        .request(json!({"type": "claim", "ticket": ticket}))
        .await;
    agent.send_text(Some(ticket), "a1", "It left today.").await;
    let mail = smtp.wait_for(1).await.remove(0);
    assert!(
        mail.contains("To: ada@example.com") && mail.contains("It left today."),
        "{mail}"
    );
}
