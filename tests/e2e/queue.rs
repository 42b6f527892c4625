//! Tickets and the live queue: status changes as both sides see them, reopening, first
//! response, subject, the customer's history and priorities.

use deskgate_tests::{metric, TestApp, WsClient};
use serde_json::{json, Value};
use std::time::Duration;

async fn ticket_frame(ws: &mut WsClient, id: i64, status: &str) -> Value {
    ws.recv_where(&format!("ticket {id} {status}"), |f| {
        f["type"] == "ticket" && f["ticket"]["id"] == id && f["ticket"]["status"] == status
    })
    .await
}

async fn queue_frame(ws: &mut WsClient, op: &str, id: i64) -> Value {
    ws.recv_where(&format!("queue {op} {id}"), |f| {
        f["type"] == "queue" && f["op"] == op && f["ticket"]["id"] == id
    })
    .await
}

async fn show(app: &TestApp, token: &str, id: i64) -> Value {
    let (status, body) = app.get(&format!("/api/tickets/{id}"), Some(token)).await;
    assert_eq!(status, 200, "{body}");
    body["ticket"].clone()
}

#[tokio::test]
async fn ticket_goes_from_queued_to_assigned_to_resolved_for_both_sides() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket("My parcel is late").await;

    let t = ticket_frame(&mut c.ws, c.ticket, "queued").await;
    assert_eq!(t["ticket"]["agent"], json!(null));
    let q = queue_frame(&mut agent, "upsert", c.ticket).await;
    assert_eq!(q["ticket"]["status"], "queued");
    assert_eq!(show(&app, &grace.token, c.ticket).await["status"], "queued");

    let ok = agent
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    assert_eq!(ok["ticket"]["status"], "assigned");
    assert_eq!(ok["ticket"]["agent"]["id"], grace.id);
    queue_frame(&mut agent, "remove", c.ticket).await;
    let t = ticket_frame(&mut c.ws, c.ticket, "assigned").await;
    // Customers learn the agent's display name, nothing more.
    assert_eq!(t["ticket"]["agent"], json!({"name": "grace"}));
    let joined =
        c.ws.recv_where("system message", |f| {
            f["type"] == "message" && f["from"]["kind"] == "system"
        })
        .await;
    assert_eq!(joined["seq"], 2);

    let ok = agent
        .request(json!({"type": "resolve", "ticket": c.ticket}))
        .await;
    assert_eq!(ok["ticket"]["status"], "resolved");
    assert!(ok["ticket"]["resolved_at"].is_string());
    ticket_frame(&mut c.ws, c.ticket, "resolved").await;
    let t = show(&app, &app.admin().await.token, c.ticket).await;
    assert_eq!(t["status"], "resolved");

    // A resolved ticket takes no more agent replies.
    let err = agent
        .request(json!({"type": "send", "ticket": c.ticket, "client_id": "late", "text": "one more thing"}))
        .await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["code"], "conflict");
}

#[tokio::test]
async fn a_message_within_the_reopen_window_reopens_the_same_ticket() {
    let app = TestApp::builder()
        .reopen_window(Duration::from_secs(3600))
        .start()
        .await;
    let grace = app.agent("grace").await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket("Hello").await;
    agent
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    agent
        .request(json!({"type": "resolve", "ticket": c.ticket}))
        .await;
    ticket_frame(&mut c.ws, c.ticket, "resolved").await;

    app.clock.advance(Duration::from_secs(3000));
    let ack =
        c.ws.send_text(None, "c-2", "Actually, one more thing")
            .await;
    assert_eq!(ack["ticket"], c.ticket);
    assert_eq!(ack["conversation"], c.conversation);
    assert_eq!(ack["seq"], 4, "1 hello, 2 joined, 3 resolved, 4 this");
    ticket_frame(&mut c.ws, c.ticket, "queued").await;
    let q = queue_frame(&mut agent, "upsert", c.ticket).await;
    assert_eq!(q["ticket"]["agent"], json!(null));
    assert_eq!(q["ticket"]["resolved_at"], json!(null));

    // The same ticket can be claimed again.
    let ok = agent
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    assert_eq!(ok["ticket"]["status"], "assigned");
}

#[tokio::test]
async fn after_the_reopen_window_a_message_opens_a_new_ticket() {
    let app = TestApp::builder()
        .reopen_window(Duration::from_secs(3600))
        .start()
        .await;
    let grace = app.agent("grace").await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket("First problem").await;
    agent
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    agent
        .request(json!({"type": "resolve", "ticket": c.ticket}))
        .await;

    app.clock.advance(Duration::from_secs(3601));
    let ack = c.ws.send_text(None, "c-2", "Second problem").await;
    let new_ticket = ack["ticket"].as_i64().unwrap();
    assert_ne!(new_ticket, c.ticket);
    assert_ne!(ack["conversation"], c.conversation);
    assert_eq!(ack["seq"], 1);
    let q = queue_frame(&mut agent, "upsert", new_ticket).await;
    assert_eq!(q["ticket"]["subject"], "Second problem");
    ticket_frame(&mut c.ws, new_ticket, "queued").await;

    let admin = app.admin().await;
    assert_eq!(show(&app, &admin.token, c.ticket).await["status"], "closed");
    assert_eq!(
        show(&app, &admin.token, new_ticket).await["status"],
        "queued"
    );
}

#[tokio::test]
async fn first_response_at_is_set_by_the_first_agent_reply_only() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket("Hello").await;
    let ok = agent
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    assert_eq!(ok["ticket"]["first_response_at"], json!(null));

    app.clock.advance(Duration::from_secs(90));
    c.ws.send_text(None, "c-2", "Anyone?").await;
    let t = show(&app, &grace.token, c.ticket).await;
    assert_eq!(
        t["first_response_at"],
        json!(null),
        "customer messages do not count"
    );

    app.clock.advance(Duration::from_secs(30));
    let first = agent.send_text(Some(c.ticket), "g-1", "Here!").await;
    app.clock.advance(Duration::from_secs(30));
    let second = agent.send_text(Some(c.ticket), "g-2", "Sorry").await;
    assert_ne!(first["at"], second["at"]);
    let t = show(&app, &grace.token, c.ticket).await;
    assert_eq!(t["first_response_at"], first["at"]);
    assert_ne!(t["first_response_at"], t["created_at"]);
}

#[tokio::test]
async fn subject_is_the_first_line_of_the_first_message() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    let visitor = app.visitor().await;
    let (mut customer, _) = app.customer_ws(&visitor).await;
    let ack = customer
        .send_text(
            None,
            "c-1",
            "\n  Refund request  \nI was charged twice for order 77.",
        )
        .await;
    let ticket = ack["ticket"].as_i64().unwrap();
    customer.send_text(None, "c-2", "Another line later").await;
    let q = queue_frame(&mut agent, "upsert", ticket).await;
    assert_eq!(q["ticket"]["subject"], "Refund request");
    assert_eq!(
        show(&app, &grace.token, ticket).await["subject"],
        "Refund request"
    );
}

#[tokio::test]
async fn the_customers_history_is_shown_to_the_agent_holding_their_ticket_only() {
    let app = TestApp::builder()
        .reopen_window(Duration::from_secs(60))
        .start()
        .await;
    let grace = app.agent("grace").await;
    let bob = app.agent("bob").await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    let mut c = app.customer_with_ticket("Old problem").await;
    agent
        .request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    agent
        .request(json!({"type": "resolve", "ticket": c.ticket}))
        .await;
    app.clock.advance(Duration::from_secs(120));
    let ack = c.ws.send_text(None, "c-2", "New problem").await;
    let new_ticket = ack["ticket"].as_i64().unwrap();
    assert_ne!(new_ticket, c.ticket);

    let path = format!("/api/customers/{}/tickets", c.visitor.customer_id);
    // Nobody holds the new ticket yet.
    assert_eq!(app.get(&path, Some(&grace.token)).await.0, 404);

    agent
        .request(json!({"type": "claim", "ticket": new_ticket}))
        .await;
    let (status, history) = app.get(&path, Some(&grace.token)).await;
    assert_eq!(status, 200, "{history}");
    let ids: Vec<i64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![new_ticket, c.ticket], "newest first");
    assert_eq!(history[0]["subject"], "New problem");
    assert_eq!(history[1]["status"], "closed");
    // A closed ticket's subject is part of its transcript: it opens only through a grant.
    assert_eq!(history[1]["subject"], "");

    let (status, body) = app.get(&path, Some(&bob.token)).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = app
        .get("/api/customers/999999/tickets", Some(&bob.token))
        .await;
    assert_eq!(
        status, 404,
        "another customer and a missing one look the same"
    );
}

#[tokio::test]
async fn a_priority_change_reorders_the_queue() {
    let app = TestApp::start().await;
    let grace = app.agent("grace").await;
    let lead = app.staff("lina", "lead", 5).await;
    let (mut agent, _) = app.agent_ws(&grace).await;
    let mut tickets = Vec::new();
    for text in ["first", "second", "third"] {
        tickets.push(app.customer_with_ticket(text).await.ticket);
        app.clock.advance(Duration::from_secs(10));
    }
    let order = |body: &Value| -> Vec<i64> {
        body["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };
    let (_, queue) = app.get("/api/queue", Some(&grace.token)).await;
    assert_eq!(order(&queue), tickets, "longest waiting first");
    assert_eq!(queue["stats"]["queued"], 3);

    // An agent may not reprioritise a ticket that is not theirs.
    let (status, _) = app
        .patch(
            &format!("/api/tickets/{}", tickets[2]),
            Some(&grace.token),
            json!({"priority": "urgent"}),
        )
        .await;
    assert_eq!(status, 403);

    let (status, body) = app
        .patch(
            &format!("/api/tickets/{}", tickets[2]),
            Some(&lead.token),
            json!({"priority": "urgent"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["priority"], "urgent");
    let q = agent
        .recv_where("urgent upsert", |f| {
            f["type"] == "queue" && f["op"] == "upsert" && f["ticket"]["priority"] == "urgent"
        })
        .await;
    assert_eq!(q["ticket"]["id"], tickets[2]);

    let (_, queue) = app.get("/api/queue", Some(&grace.token)).await;
    assert_eq!(order(&queue), vec![tickets[2], tickets[0], tickets[1]]);
    let (_, welcome) = app.agent_ws(&app.login("grace").await).await;
    let welcome_order: Vec<i64> = welcome["queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(welcome_order, vec![tickets[2], tickets[0], tickets[1]]);

    let (status, _) = app
        .patch(
            &format!("/api/tickets/{}", tickets[0]),
            Some(&lead.token),
            json!({"priority": "whenever"}),
        )
        .await;
    assert_eq!(status, 400);
}

/// What a console's queue view holds after these frames: `welcome`, then `queue` upserts,
/// removes and resets in order.
fn queue_view(frames: &[Value]) -> std::collections::BTreeSet<i64> {
    let mut view = std::collections::BTreeSet::new();
    let id = |t: &Value| t["id"].as_i64().expect("ticket id");
    for f in frames {
        match (f["type"].as_str(), f["op"].as_str()) {
            (Some("welcome"), _) => {
                view = f["queue"]
                    .as_array()
                    .expect("queue")
                    .iter()
                    .map(id)
                    .collect();
            }
            (Some("queue"), Some("upsert")) => {
                view.insert(id(&f["ticket"]));
            }
            (Some("queue"), Some("remove")) => {
                view.remove(&id(&f["ticket"]));
            }
            (Some("queue"), Some("reset")) => {
                view = f["tickets"]
                    .as_array()
                    .expect("tickets")
                    .iter()
                    .map(id)
                    .collect();
            }
            _ => {}
        }
    }
    view
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_behind_on_a_burst_of_tickets_gets_the_queue_resent_and_stays_open() {
    // The lead's socket is kept busy by a replay larger than the kernel's socket buffers, which
    // it does not read; meanwhile new tickets arrive until their queue events no longer fit.
    const REPLAYED: i64 = 320;
    const MOST_TICKETS: usize = 200;
    let app = TestApp::builder()
        .outbound_queue(8)
        .rate(1000, 1000)
        .start()
        .await;
    let grace = app.agent("grace").await;
    let lead = app.staff("lea", "lead", 1).await;
    let mut c = app.customer_with_ticket("a long story").await;
    {
        let (mut agent, _) = app.agent_ws(&grace).await;
        let ok = agent
            .request(json!({"type": "claim", "ticket": c.ticket}))
            .await;
        assert_eq!(ok["type"], "ok", "{ok}");
        agent.close().await;
    }
    // 8,000 four-byte characters: 32 KB a message, about 10 MB in all.
    let big = "😀".repeat(7990);
    for i in 0..REPLAYED {
        c.ws.send_text(None, &format!("c-{i}"), &format!("{i} {big}"))
            .await;
        c.ws.take_pending();
    }

    let (mut console, welcome) = app.agent_ws(&lead).await;
    let mut frames = vec![welcome];
    console
        .send(json!({"type": "sync", "ticket": c.ticket, "after": 0}))
        .await;
    let mut burst = Vec::new();
    while burst.len() < MOST_TICKETS {
        burst.push(
            app.customer_with_ticket(&format!("burst {}", burst.len()))
                .await,
        );
        let m = app.metrics().await;
        if metric(&m, "deskgate_queue_resyncs_total").unwrap_or(0.0) >= 1.0 {
            break;
        }
    }
    assert!(burst.len() < MOST_TICKETS, "the queue events always fitted");

    // Reading again: the replay, whole, then the queue resent; the console was never closed.
    let ping = console.request(json!({"type": "ping"})).await;
    assert_eq!(ping["type"], "pong", "{ping}");
    frames.extend(console.drain(Duration::from_millis(300)).await);
    let replayed = frames
        .iter()
        .filter(|f| f["type"] == "message" && f["ticket"] == c.ticket)
        .count() as i64;
    assert_eq!(
        replayed,
        2 + REPLAYED,
        "the first message, the join and every one after"
    );
    let resets = frames
        .iter()
        .filter(|f| f["type"] == "queue" && f["op"] == "reset")
        .count();
    assert!(resets >= 1, "no queue snapshot came");
    let want: std::collections::BTreeSet<i64> = burst.iter().map(|b| b.ticket).collect();
    assert_eq!(queue_view(&frames), want, "the view ends as the queue is");
    let (_, listed) = app.get("/api/queue", Some(&lead.token)).await;
    let queued: std::collections::BTreeSet<i64> = listed["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .map(|t| t["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(queued, want);
    let m = app.metrics().await;
    assert_eq!(metric(&m, "deskgate_closed_too_slow_total"), Some(0.0));
    assert!(
        app.audit("action=ticket_read")
            .await
            .iter()
            .any(|e| e["detail"]
                .as_str()
                .unwrap_or("")
                .starts_with("queue resent")),
        "the resent queue is audited as a listing"
    );
}
