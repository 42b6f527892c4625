//! Roles, masking and access through the real server: contact details masked wherever they
//! appear, reveals that need a permission and a reason, agents kept to their own and queued
//! tickets, permissions checked on every WebSocket frame, and a revoked role closing a live
//! socket. Every decision shows up in the audit log.

use deskgate::clock::Clock;
use deskgate_tests::{Closed, Opened, TestApp};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);
const EMAIL: &str = "jane.doe@example.com";
const PHONE: &str = "+1 415-555-0132";
const MASKED_EMAIL: &str = "j***@example.com";
const MASKED_PHONE: &str = "+1 ***-***-0132";

/// A verified customer of the demo site with email and phone, whose first message opened a
/// ticket.
async fn customer_with_contact(app: &TestApp) -> Opened {
    let secret = std::fs::read_to_string(app.data_dir().join("sites/demo.identity-secret"))
        .unwrap()
        .trim()
        .to_string();
    let exp = app.clock.now().millis() / 1000 + 600;
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "cust-jane", "name": "Jane Doe", "email": EMAIL, "phone": PHONE, "exp": exp}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let visitor = app
        .visitor_with(json!({"site_key": "demo", "identity_token": token}))
        .await;
    let (mut ws, _) = app.customer_ws(&visitor).await;
    let ack = ws.send_text(None, "first", "My order never arrived").await;
    Opened {
        ticket: ack["ticket"].as_i64().unwrap(),
        conversation: ack["conversation"].as_i64().unwrap(),
        visitor,
        ws,
    }
}

fn assert_no_clear_contact(what: &str, v: &Value) {
    let text = v.to_string();
    assert!(
        !text.contains("jane.doe"),
        "{what} carries the clear email: {text}"
    );
    // Any run of the phone's own digits (4155550132, 555-0132, …), not a "415" that a hash,
    // a random id or a timestamp happens to contain.
    assert!(
        !["415-555", "415 555", "4155550132", "555-0132", "5550132"]
            .iter()
            .any(|p| text.contains(p)),
        "{what} carries the clear phone: {text}"
    );
}

#[tokio::test]
async fn contact_details_are_masked_in_every_response_and_frame() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let lead = app.staff("lena", "lead", 5).await;
    let (mut agent_ws, welcome) = app.agent_ws(&grace).await;
    let mut c = customer_with_contact(&app).await;
    let customer = c.visitor.customer_id;
    assert_no_clear_contact("welcome", &welcome);

    let (status, view) = app
        .get(&format!("/api/customers/{customer}"), Some(&grace.token))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["email"], MASKED_EMAIL);
    assert_eq!(view["phone"], MASKED_PHONE);

    let claimed = agent_ws
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    assert_eq!(claimed["type"], "ok", "{claimed}");
    c.ws.send_text(None, "second", "Hello?").await;

    let (status, detail) = app
        .get(&format!("/api/tickets/{}", c.ticket), Some(&grace.token))
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["customer"]["email"], MASKED_EMAIL);
    assert_eq!(detail["customer"]["phone"], MASKED_PHONE);

    // Every other place a customer appears, for an agent and for a lead alike.
    for who in [&grace, &lead] {
        for path in [
            format!("/api/customers/{customer}"),
            format!("/api/tickets/{}", c.ticket),
            format!("/api/tickets/{}/messages", c.ticket),
            "/api/tickets".to_string(),
            format!("/api/customers/{customer}/tickets"),
            "/api/queue".to_string(),
        ] {
            let (status, body) = app.get(&path, Some(&who.token)).await;
            assert_eq!(status, 200, "{path} as {}: {body}", who.username);
            assert_no_clear_contact(&path, &body);
        }
    }
    for frame in agent_ws.drain(QUIET).await {
        assert_no_clear_contact("agent frame", &frame);
    }
}

#[tokio::test]
async fn a_reveal_needs_the_permission_and_a_reason_and_is_audited() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let lead = app.staff("lena", "lead", 5).await;
    let c = customer_with_contact(&app).await;
    let customer = c.visitor.customer_id;
    let path = format!("/api/customers/{customer}/reveal");
    let reason = "customer asked to confirm the address on file";

    let (status, body) = app
        .post(
            &path,
            Some(&grace.token),
            json!({"field": "email", "reason": reason}),
        )
        .await;
    assert_eq!(status, 403, "an agent may not reveal: {body}");
    assert_no_clear_contact("refusal", &body);

    let (status, body) = app
        .post(&path, Some(&lead.token), json!({"field": "email"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("reason"));
    let (status, body) = app
        .post(
            &path,
            Some(&lead.token),
            json!({"field": "email", "reason": "  why  "}),
        )
        .await;
    assert_eq!(status, 400, "too short a reason: {body}");
    let (status, body) = app
        .post(
            &path,
            Some(&lead.token),
            json!({"field": "email", "reason": "x".repeat(501)}),
        )
        .await;
    assert_eq!(status, 400, "too long a reason: {body}");
    let (status, body) = app
        .post(
            &path,
            Some(&lead.token),
            json!({"field": "address", "reason": reason}),
        )
        .await;
    assert_eq!(status, 400, "unknown field: {body}");

    let (status, body) = app
        .post(
            &path,
            Some(&lead.token),
            json!({"field": "email", "reason": reason}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], EMAIL);
    let (status, body) = app
        .post(
            &path,
            Some(&lead.token),
            json!({"field": "phone", "reason": reason}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], PHONE);

    let entries = app
        .audit(&format!("action=pii_revealed&customer={customer}"))
        .await;
    let summary: Vec<(i64, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["actor"].as_i64().unwrap(),
                e["outcome"].as_str().unwrap(),
                e["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (lead.id, "allowed", "lead"),
            (lead.id, "allowed", "lead"),
            (grace.id, "denied", "agent"),
        ],
        "newest first; invalid requests reveal nothing and are not reveals"
    );
    assert!(entries[0]["detail"]
        .as_str()
        .unwrap()
        .contains("field=phone"));
    assert!(entries[1]["detail"].as_str().unwrap().contains(reason));
    for e in &entries {
        assert_no_clear_contact("audit entry", e);
        assert!(e["request_id"].as_str().is_some_and(|r| !r.is_empty()));
        assert_eq!(e["ip"], "127.0.0.1");
    }
}

#[tokio::test]
async fn an_agent_reading_a_foreign_ticket_is_refused_and_audited() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let bob = app.agent("bob").await;
    let (mut g, _) = app.agent_ws(&grace).await;
    let (mut b, _) = app.agent_ws(&bob).await;
    let c = customer_with_contact(&app).await;
    let customer = c.visitor.customer_id;

    // Queued: in everyone's queue, readable by both.
    let (status, _) = app
        .get(&format!("/api/tickets/{}", c.ticket), Some(&bob.token))
        .await;
    assert_eq!(status, 200);

    g.request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    for path in [
        format!("/api/tickets/{}", c.ticket),
        format!("/api/tickets/{}/messages", c.ticket),
        format!("/api/tickets/{}/notes", c.ticket),
        format!("/api/customers/{customer}"),
    ] {
        let (status, body) = app.get(&path, Some(&bob.token)).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    let (status, _) = app.get("/api/tickets/999999", Some(&bob.token)).await;
    assert_eq!(status, 404, "a missing ticket is still not found");
    let err = b
        .request(json!({"type": "sync", "ticket": c.ticket, "after": 0}))
        .await;
    assert_eq!(err["code"], "forbidden", "{err}");
    let (status, _) = app
        .get(
            &format!("/api/tickets/{}/messages", c.ticket),
            Some(&grace.token),
        )
        .await;
    assert_eq!(status, 200, "the holder reads it");

    let denied = app.audit(&format!("actor={}&outcome=denied", bob.id)).await;
    let actions: Vec<(&str, Option<i64>)> = denied
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["customer"].as_i64()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("ticket_read", Some(customer)),
            ("customer_read", Some(customer)),
            ("ticket_read", Some(customer)),
            ("ticket_read", Some(customer)),
            ("ticket_read", Some(customer)),
        ]
    );
    assert_eq!(denied[4]["object_kind"], "ticket");
    assert_eq!(denied[4]["object_id"], c.ticket);
    let allowed: Vec<String> = app
        .audit(&format!(
            "actor={}&action=ticket_read&outcome=allowed",
            grace.id
        ))
        .await
        .iter()
        .map(|e| e["detail"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        allowed,
        ["messages", "follow", "welcome: 0 listed"],
        "the holder's reads: her console's welcome, following the claimed ticket, the REST read"
    );
}

#[tokio::test]
async fn permissions_are_checked_on_every_frame() {
    let app = TestApp::start().await;
    let approver = app.staff("april", "approver", 5).await;
    let c = app.customer_with_ticket("Hello").await;
    let (mut ws, welcome) = app.agent_ws(&approver).await;
    assert_eq!(
        welcome["queue"],
        json!([]),
        "an approver does not see the live queue"
    );
    for frame in [
        json!({"type": "claim", "ticket": c.ticket}),
        json!({"type": "send", "ticket": c.ticket, "client_id": "a-1", "text": "hi"}),
        json!({"type": "note", "ticket": c.ticket, "client_id": "a-2", "text": "hm"}),
        json!({"type": "transfer", "ticket": c.ticket, "to": null}),
        json!({"type": "resolve", "ticket": c.ticket}),
        json!({"type": "typing", "ticket": c.ticket, "active": true}),
        json!({"type": "read", "ticket": c.ticket, "seq": 1}),
        json!({"type": "sync", "ticket": c.ticket, "after": 0}),
    ] {
        let err = ws.request(frame.clone()).await;
        assert_eq!(err["type"], "error", "{frame}: {err}");
        assert_eq!(err["code"], "forbidden", "{frame}: {err}");
    }
    let pong = ws.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "the connection stays usable");
    // Nor over REST.
    let (status, body) = app.get("/api/queue", Some(&approver.token)).await;
    assert_eq!(
        status, 403,
        "an approver does not get the queue over REST: {body}"
    );
    let refused = app
        .audit(&format!(
            "actor={}&action=ticket_read&outcome=denied",
            approver.id
        ))
        .await;
    assert!(
        refused.iter().any(|e| e["detail"] == "queue"),
        "{refused:?}"
    );

    // The same frames from an agent go through.
    let grace = app.agent("grace").await;
    let (mut g, welcome) = app.agent_ws(&grace).await;
    assert_eq!(welcome["queue"].as_array().unwrap().len(), 1);
    let ok = g
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
}

#[tokio::test]
async fn revoking_a_role_closes_the_live_socket_and_is_audited() {
    let app = TestApp::start().await;
    let admin = app.admin().await;
    let sam = app.staff("sam", "supervisor", 5).await;
    let (mut ws, _) = app.agent_ws(&sam).await;
    let c = customer_with_contact(&app).await;
    let reveal = format!("/api/customers/{}/reveal", c.visitor.customer_id);
    let body = json!({"field": "email", "reason": "verifying a refund request"});
    assert_eq!(
        app.post(&reveal, Some(&sam.token), body.clone()).await.0,
        200
    );

    let (status, _) = app
        .patch(
            &format!("/api/users/{}", sam.id),
            Some(&admin.token),
            json!({"role": "agent"}),
        )
        .await;
    assert_eq!(status, 200);
    // "Disconnected within a second": the close must arrive within a second of the admin's
    // answer (this bounds a wait for the event, it measures nothing).
    let answered = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(1), ws.closed())
        .await
        .unwrap_or_else(|_| panic!("no close within a second of the role change"));
    assert_eq!(closed, Closed::Code(4003));
    assert!(answered.elapsed() <= Duration::from_secs(1));
    assert_eq!(
        app.post(&reveal, Some(&sam.token), body.clone()).await.0,
        401
    );
    let again = app.login("sam").await;
    assert_eq!(
        app.post(&reveal, Some(&again.token), body).await.0,
        403,
        "the new role applies at once"
    );

    let changes = app
        .audit(&format!(
            "action=role_changed&object_kind=user&object_id={}",
            sam.id
        ))
        .await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["actor"], admin.id);
    assert_eq!(changes[0]["detail"], "supervisor -> agent");
}

/// Reads that show tickets leave an entry too: one per list (REST lists, the queue, a
/// customer's history, the welcome of a staff socket) naming every customer shown, and one
/// per conversation a socket follows, resumes or syncs. "Who looked at customer X" finds them.
#[tokio::test]
async fn list_and_socket_reads_are_audited_with_their_customers() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let lead = app.staff("lena", "lead", 5).await;
    let c = customer_with_contact(&app).await;
    let other = app.customer_with_ticket("Someone else").await;
    let customer = c.visitor.customer_id;

    for path in ["/api/tickets", "/api/queue"] {
        let (status, body) = app.get(path, Some(&grace.token)).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (mut g, _) = app.agent_ws(&grace).await;
    let ok = g
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    // The console follows the conversation once it is told the ticket is its own.
    g.recv_where("the claimed ticket", |f| {
        f["type"] == "ticket" && f["ticket"]["status"] == "assigned"
    })
    .await;
    let (status, _) = app
        .get(
            &format!("/api/customers/{customer}/tickets"),
            Some(&grace.token),
        )
        .await;
    assert_eq!(status, 200);
    // The lead replays the conversation with `sync`; grace's second device resumes it.
    let (mut l, _) = app.agent_ws(&lead).await;
    l.send(json!({"type": "sync", "ticket": c.ticket, "after": 0}))
        .await;
    l.recv_type("resumed").await;
    let (_, _) = app
        .hello(
            "/ws/agent",
            &grace.token,
            json!([{"conversation": c.conversation, "after": 0}]),
        )
        .await;

    let reads = app
        .audit(&format!(
            "customer={customer}&action=ticket_read&outcome=allowed"
        ))
        .await;
    let mut seen: Vec<(i64, String)> = reads
        .iter()
        .rev()
        .map(|e| {
            let detail = e["detail"].as_str().unwrap();
            let how = detail.split(':').next().unwrap().to_string();
            (e["actor"].as_i64().unwrap(), how)
        })
        .collect();
    seen.dedup();
    let want: Vec<(i64, String)> = [
        (grace.id, "tickets"),
        (grace.id, "queue"),
        (grace.id, "welcome"),
        (grace.id, "follow"),
        (grace.id, "history"),
        (lead.id, "sync"),
        (grace.id, "welcome"),
    ]
    .iter()
    .map(|(a, h)| (*a, h.to_string()))
    .collect();
    assert_eq!(seen, want, "{reads:?}");
    // A list is one entry naming every customer it showed, not one per row.
    let list = reads
        .iter()
        .find(|e| e["detail"] == "tickets: 2 listed")
        .unwrap();
    let mut shown: Vec<i64> = list["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_i64().unwrap())
        .collect();
    shown.sort_unstable();
    assert_eq!(shown, vec![customer, other.visitor.customer_id]);
    assert!(list["customer"].is_null());
    let follow = reads.iter().find(|e| e["detail"] == "follow").unwrap();
    assert_eq!(follow["customer"], customer);
    assert_eq!(follow["object_id"], c.ticket);
    // Every socket read carries where the socket came from.
    assert!(reads.iter().all(|e| e["ip"] == "127.0.0.1"), "{reads:?}");
}

/// Entries caused on a socket carry the address, user agent and request id of the socket's
/// upgrade request, like those of REST calls.
#[tokio::test]
async fn socket_entries_carry_where_the_socket_came_from() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let bob = app.agent("bob").await;
    let c = customer_with_contact(&app).await;
    let url = format!("ws://{}/ws/agent", app.addr);
    let mut ws = deskgate_tests::WsClient::connect_with(
        &url,
        Some("deskgate.v1"),
        &[
            ("User-Agent", "e2e-console/2.1"),
            ("X-Request-Id", "sock-42"),
        ],
    )
    .await
    .unwrap();
    ws.send(json!({"type": "hello", "token": bob.token})).await;
    ws.recv_type("welcome").await;
    let (mut g, _) = app.agent_ws(&grace).await;
    g.request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    let err = ws
        .request(json!({"type": "sync", "ticket": c.ticket, "after": 0}))
        .await;
    assert_eq!(err["code"], "forbidden", "{err}");
    let denied = app.audit(&format!("actor={}&outcome=denied", bob.id)).await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["ip"], "127.0.0.1");
    assert_eq!(denied[0]["user_agent"], "e2e-console/2.1");
    assert_eq!(denied[0]["request_id"], "sock-42");

    // A card number typed in the widget: the customer's socket, its address and agent.
    let url = format!("ws://{}/ws/customer", app.addr);
    let mut cws = deskgate_tests::WsClient::connect_with(
        &url,
        Some("deskgate.v1"),
        &[("User-Agent", "e2e-widget/1.0")],
    )
    .await
    .unwrap();
    cws.send(json!({"type": "hello", "token": c.visitor.token}))
        .await;
    cws.recv_type("welcome").await;
    cws.send(json!({"type": "send", "client_id": "cc", "text": "card 4111 1111 1111 1111"}))
        .await;
    cws.recv_type("blocked").await;
    let blocked = app
        .audit(&format!(
            "action=card_number_blocked&customer={}",
            c.visitor.customer_id
        ))
        .await;
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(blocked[0]["role"], "customer");
    assert_eq!(blocked[0]["ip"], "127.0.0.1");
    assert_eq!(blocked[0]["user_agent"], "e2e-widget/1.0");
    assert!(blocked[0]["request_id"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
}
