//! Many nodes: real `deskgate` processes on loopback sharing a PostgreSQL database and a
//! `redis-server`, the way they run behind a load balancer.

use crate::config::deskgate_binary;
use deskgate_tests::cluster::{add_agent, add_staff, shared_data, Node, Redis};
use deskgate_tests::postgres::TestDatabase;
use deskgate_tests::{Closed, WsClient};
use serde_json::{json, Value};
use std::time::Duration;

/// Waits until `/readyz` of the node answers `want` (polling; no timing is asserted).
async fn ready_becomes(node: &Node, want: u16) {
    for _ in 0..200 {
        if node.ready().await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let now = node.http.get(format!("{}/readyz", node.base)).send().await;
    let said = match now {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => e.to_string(),
    };
    panic!("{}/readyz never answered {want}: {said}", node.base);
}

fn is_text(f: &Value, text: &str) -> bool {
    f["type"] == "message" && f["text"] == text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_conversations_claims_and_survive_a_node_and_redis_dying() {
    let bin = deskgate_binary();
    let db = TestDatabase::create().await;
    let mut redis = Redis::start();
    let (_dir, data) = shared_data();
    let mut a = Node::start(bin, &data, &db, &redis);
    let b = Node::start(bin, &data, &db, &redis);
    for name in ["ann", "ben"] {
        add_agent(bin, &data, &db, name);
    }
    ready_becomes(&a, 200).await;
    ready_becomes(&b, 200).await;

    // A customer on node A, agents on node B and on node A.
    let visitor = a.visitor().await;
    let (mut customer, _) = a.hello("/ws/customer", &visitor, json!([])).await;
    let ann_token = b.login("ann").await;
    let ben_token = a.login("ben").await;
    let (mut ann, _) = b.hello("/ws/agent", &ann_token, json!([])).await;
    let (mut ben, _) = a.hello("/ws/agent", &ben_token, json!([])).await;
    let first = customer.send_text(None, "c1", "my order is late").await;
    let ticket = first["ticket"].as_i64().unwrap();
    let conversation = first["conversation"].as_i64().unwrap();

    // The queue change crosses nodes; both agents claim at once: exactly one wins.
    ann.recv_where("new ticket on B", |f| {
        f.to_string().contains(&format!("{ticket}"))
    })
    .await;
    let claim = |r: &str| json!({"type": "claim", "ref": r, "ticket": ticket});
    ann.send(claim("claim-ann")).await;
    ben.send(claim("claim-ben")).await;
    let ra = ann
        .recv_where("claim-ann", |f| f["ref"] == "claim-ann")
        .await;
    let rb = ben
        .recv_where("claim-ben", |f| f["ref"] == "claim-ben")
        .await;
    let (winner, loser) = match (ra["type"].as_str(), rb["type"].as_str()) {
        (Some("ok"), Some("error")) => ((&mut ann, "a"), rb),
        (Some("error"), Some("ok")) => ((&mut ben, "b"), ra),
        _ => panic!("exactly one claim must win: {ra} / {rb}"),
    };
    assert_eq!(loser["code"], "conflict", "{loser}");
    let (agent, _) = winner;

    // Real time across nodes, both ways.
    agent
        .send(json!({"type": "send", "ticket": ticket, "client_id": "a1", "text": "looking now"}))
        .await;
    customer
        .recv_where("agent reply", |f| is_text(f, "looking now"))
        .await;
    customer.send_text(None, "c2", "thanks").await;
    agent
        .recv_where("customer text", |f| is_text(f, "thanks"))
        .await;

    // Redis dies mid-conversation: readiness flips, messages are still stored and acked;
    // once it is back the nodes resubscribe and live events flow again.
    redis.kill();
    ready_becomes(&a, 503).await;
    let during = customer.send_text(None, "c3", "still there?").await;
    assert!(
        during["seq"].as_i64().is_some(),
        "stored without Redis: {during}"
    );
    redis.restart();
    ready_becomes(&a, 200).await;
    ready_becomes(&b, 200).await;

    // Node A is killed (-9) with the customer on it. The customer reconnects through another
    // node and resumes from the last seq it had: nothing lost, nothing twice.
    let last_seen = 2; // the customer's own first message and the join notice
    drop(customer);
    a.kill();
    let (mut again, _) = b
        .hello(
            "/ws/customer",
            &visitor,
            json!([{"conversation": conversation, "after": last_seen}]),
        )
        .await;
    let mut texts = Vec::new();
    loop {
        let f = again.recv().await.unwrap();
        if f["type"] == "message" {
            texts.push(f["text"].as_str().unwrap_or_default().to_string());
            assert_eq!(
                f["seq"].as_i64().unwrap(),
                last_seen + texts.len() as i64,
                "{f}"
            );
        }
        if f["type"] == "resumed" {
            break;
        }
    }
    assert_eq!(texts, ["looking now", "thanks", "still there?"]);
    again.send_text(None, "c4", "on node B now").await;
    let _ = drain(agent).await;
}

/// The bus spread over two Redis servers (`--bus-redis-urls`), beside the one that keeps
/// presence, limits and step-up; the two nodes list them in different orders. Each
/// conversation's events go through one of the two, so both carry part of them and the first
/// server none, and every conversation is live across the nodes. One of the two dies: both
/// nodes say they are not ready, and messages are still stored and acknowledged. Once it is
/// back, the agent's socket is told to reconnect (1012) and resumes with every message it
/// missed, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_spread_over_two_redis_servers_carries_every_conversation_and_outlives_one() {
    let bin = deskgate_binary();
    let db = TestDatabase::create().await;
    let redis = Redis::start();
    let mut bus = [Redis::start(), Redis::start()];
    let ab = format!("{},{}", bus[0].url(), bus[1].url());
    let ba = format!("{}, {}", bus[1].url(), bus[0].url());
    let (_dir, data) = shared_data();
    let a = Node::start_with(bin, &data, &db, &redis, &[("DESKGATE_BUS_REDIS_URLS", &ab)]);
    let b = Node::start_with(bin, &data, &db, &redis, &[("DESKGATE_BUS_REDIS_URLS", &ba)]);
    add_agent(bin, &data, &db, "ann");
    ready_becomes(&a, 200).await;
    ready_becomes(&b, 200).await;
    let token = b.login("ann").await;
    let (mut ann, _) = b.hello("/ws/agent", &token, json!([])).await;

    // Four customers on node A, their tickets claimed by the agent on node B; each
    // conversation is live both ways.
    let mut chats = Vec::new();
    for i in 0..4 {
        let visitor = a.visitor().await;
        let (mut customer, _) = a.hello("/ws/customer", &visitor, json!([])).await;
        let first = customer
            .send_text(None, &format!("c{i}"), &format!("hello {i}"))
            .await;
        let ticket = first["ticket"].as_i64().unwrap();
        let conversation = first["conversation"].as_i64().unwrap();
        let ok = ann
            .request(json!({"type": "claim", "ticket": ticket}))
            .await;
        assert_eq!(ok["type"], "ok", "{ok}");
        let reply = format!("reply {i}");
        ann.send(
            json!({"type": "send", "ticket": ticket, "client_id": format!("a{i}"), "text": reply}),
        )
        .await;
        customer
            .recv_where("the agent's reply", |f| is_text(f, &reply))
            .await;
        let thanks = format!("thanks {i}");
        let seen = customer.send_text(None, &format!("d{i}"), &thanks).await["seq"]
            .as_i64()
            .unwrap();
        ann.recv_where("the customer's thanks", |f| is_text(f, &thanks))
            .await;
        chats.push((customer, conversation, seen));
    }
    let carried = [bus[0].publishes(), bus[1].publishes()];
    assert!(carried.iter().all(|&n| n > 0), "{carried:?}");
    assert_eq!(redis.publishes(), 0);

    // One bus server dies: both nodes say so, and every message is still stored.
    bus[1].kill();
    ready_becomes(&a, 503).await;
    ready_becomes(&b, 503).await;
    for (i, (customer, _, _)) in chats.iter_mut().enumerate() {
        let ack = customer
            .send_text(None, &format!("e{i}"), &format!("while one was down {i}"))
            .await;
        assert!(ack["seq"].as_i64().is_some(), "stored: {ack}");
    }
    bus[1].restart();
    ready_becomes(&a, 200).await;
    ready_becomes(&b, 200).await;

    // The agent is told to reconnect and resumes from what they had seen: every message sent
    // meanwhile comes, once each.
    assert_eq!(ann.closed().await, Closed::Code(1012));
    let resume: Vec<Value> = chats
        .iter()
        .map(|(_, conversation, seen)| json!({"conversation": conversation, "after": seen}))
        .collect();
    let (mut again, _) = b.hello("/ws/agent", &token, json!(resume)).await;
    let mut missed = Vec::new();
    let mut resumed = 0;
    while resumed < chats.len() {
        let f = again.recv().await.unwrap();
        match f["type"].as_str() {
            Some("message") => missed.push(f["text"].as_str().unwrap_or_default().to_string()),
            Some("resumed") => resumed += 1,
            _ => {}
        }
    }
    missed.sort();
    let want: Vec<String> = (0..4).map(|i| format!("while one was down {i}")).collect();
    assert_eq!(missed, want);
}

/// Reads the agent's socket until the customer's last message arrives (or its node is gone).
async fn drain(agent: &mut WsClient) -> Option<Closed> {
    loop {
        match agent.recv().await {
            Ok(f) if is_text(&f, "on node B now") => return None,
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// Polls `cond` until it holds, for a change another process makes in its own time (a
/// heartbeat, an expiry); gives up after many tries with `what`. No duration is asserted.
async fn until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

/// The ids of the agents online as the queue view of `node` lists them.
async fn listed_agents(node: &Node, token: &str) -> Vec<i64> {
    let (status, body) = node.get("/api/queue", Some(token)).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<i64> = body["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| a["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(body["agents_online"], ids.len(), "{body}");
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_spans_nodes_auto_assign_crosses_them_and_a_killed_nodes_agents_expire() {
    let bin = deskgate_binary();
    let db = TestDatabase::create().await;
    let redis = Redis::start();
    let (_dir, data) = shared_data();
    let env = [
        ("DESKGATE_AUTO_ASSIGN", "true"),
        ("DESKGATE_PRESENCE_TTL", "2s"),
    ];
    let a = Node::start_with(bin, &data, &db, &redis, &env);
    let mut b = Node::start_with(bin, &data, &db, &redis, &env);
    add_agent(bin, &data, &db, "ann");
    // A lead sees the queue view the supervisor console reads, without a second factor.
    add_staff(bin, &data, &db, "lea", "lead");
    ready_becomes(&a, 200).await;
    ready_becomes(&b, 200).await;

    // Ann works on node B; the lead looks at node A, which has no agent of its own.
    let (status, session) = b
        .post(
            "/api/session",
            None,
            json!({"username": "ann", "password": deskgate_tests::PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{session}");
    let ann_id = session["user"]["id"].as_i64().expect("ann's id");
    let ann_token = session["token"].as_str().expect("token").to_string();
    let lead = a.login("lea").await;
    assert!(listed_agents(&a, &lead).await.is_empty());
    let (mut ann, _) = b.hello("/ws/agent", &ann_token, json!([])).await;
    until("node A lists the agent of node B", || async {
        listed_agents(&a, &lead).await == [ann_id]
    })
    .await;

    // A customer on node A opens a ticket: node A's assigner gives it to Ann on node B, whose
    // console is told and follows it.
    let visitor = a.visitor().await;
    let (mut customer, _) = a.hello("/ws/customer", &visitor, json!([])).await;
    let first = customer.send_text(None, "c1", "where is my parcel").await;
    let ticket = first["ticket"].as_i64().unwrap();
    let handed = ann
        .recv_where("the ticket, assigned to ann", |f| {
            f["type"] == "ticket"
                && f["ticket"]["id"] == ticket
                && f["ticket"]["agent"]["id"] == ann_id
        })
        .await;
    assert_eq!(handed["ticket"]["status"], "assigned", "{handed}");
    ann.send(json!({"type": "send", "ticket": ticket, "client_id": "a1", "text": "on it"}))
        .await;
    customer
        .recv_where("the reply from node B", |f| is_text(f, "on it"))
        .await;

    // Node B dies without a goodbye: its agent stays listed until the TTL runs out, then
    // leaves the view of node A.
    b.kill();
    until("node B's agent expires from node A's view", || async {
        listed_agents(&a, &lead).await.is_empty()
    })
    .await;
}

/// `POST /api/visitor` on `node` as if from `ip` (the nodes trust 127.0.0.1 as a proxy).
async fn new_visitor_from(node: &Node, ip: &str) -> u16 {
    node.http
        .post(format!("{}/api/visitor", node.base))
        .header("X-Forwarded-For", ip)
        .json(&json!({"site_key": "demo"}))
        .send()
        .await
        .expect("POST")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_nodes_and_falls_back_per_node_while_redis_is_down() {
    let bin = deskgate_binary();
    let db = TestDatabase::create().await;
    let mut redis = Redis::start();
    let (dir, data) = shared_data();
    let config = dir.path().join("deskgate.toml");
    std::fs::write(&config, "[limits]\nvisitor_per_ip = \"4/1h\"\n").expect("config");
    let config = config.to_str().expect("utf-8 path");
    let env = [
        ("DESKGATE_CONFIG", config),
        ("DESKGATE_TRUSTED_PROXIES", "127.0.0.1/32"),
    ];
    let a = Node::start_with(bin, &data, &db, &redis, &env);
    let b = Node::start_with(bin, &data, &db, &redis, &env);
    ready_becomes(&a, 200).await;
    ready_becomes(&b, 200).await;

    // Four new visitors from one address, split over both nodes; the fifth is refused on
    // either, though each node has seen only two.
    let ip = "192.0.2.10";
    for node in [&a, &b, &a, &b] {
        assert_eq!(new_visitor_from(node, ip).await, 201);
    }
    assert_eq!(new_visitor_from(&a, ip).await, 429);
    assert_eq!(new_visitor_from(&b, ip).await, 429);
    // Another address has its own bucket.
    assert_eq!(new_visitor_from(&b, "192.0.2.11").await, 201);

    // Redis dies: each node still enforces the limit with its own bucket (no error, no free
    // pass), and says it is not ready because its limits are only node-local now.
    redis.kill();
    let ip = "192.0.2.20";
    for _ in 0..4 {
        assert_eq!(new_visitor_from(&a, ip).await, 201);
    }
    assert_eq!(new_visitor_from(&a, ip).await, 429);
    until("node A reports its limits node-local", || async {
        let (status, body) = a.readiness().await;
        status == 503 && body.contains("rate limits node-local")
    })
    .await;

    // Redis is back: ready again, and the limit is shared again.
    redis.restart();
    ready_becomes(&a, 200).await;
    ready_becomes(&b, 200).await;
    let ip = "192.0.2.30";
    for node in [&b, &a, &b, &a] {
        assert_eq!(new_visitor_from(node, ip).await, 201);
    }
    assert_eq!(new_visitor_from(&b, ip).await, 429);
    assert_eq!(new_visitor_from(&a, ip).await, 429);
}

/// Sends a chat message and says whether it was stored (`ack`) or refused (`rate_limited`).
async fn sent(ws: &mut WsClient, client_id: &str) -> bool {
    ws.send(json!({"type": "send", "ref": client_id, "client_id": client_id, "text": "hi"}))
        .await;
    let reply = ws
        .recv_where(client_id, |f| {
            (f["type"] == "ack" && f["client_id"] == client_id)
                || (f["type"] == "error" && f["ref"] == client_id)
        })
        .await;
    if reply["type"] == "error" {
        assert_eq!(reply["code"], "rate_limited", "{reply}");
        return false;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_message_limit_holds_over_tabs_on_two_nodes_with_leases() {
    let bin = deskgate_binary();
    let db = TestDatabase::create().await;
    let redis = Redis::start();
    let (dir, data) = shared_data();
    let config = dir.path().join("deskgate.toml");
    // 40 per hour: each node leases two tokens per trip to Redis.
    std::fs::write(&config, "[limits]\nmessages_per_visitor = \"40/1h\"\n").expect("config");
    let config = config.to_str().expect("utf-8 path");
    let env = [
        ("DESKGATE_CONFIG", config),
        ("DESKGATE_RATE_PER_SEC", "1000"),
        ("DESKGATE_RATE_BURST", "1000"),
    ];
    let a = Node::start_with(bin, &data, &db, &redis, &env);
    let b = Node::start_with(bin, &data, &db, &redis, &env);
    ready_becomes(&a, 200).await;
    ready_becomes(&b, 200).await;

    // One customer, a tab on each node, sending in turn until both tabs are refused.
    let visitor = a.visitor().await;
    let (mut on_a, _) = a.hello("/ws/customer", &visitor, json!([])).await;
    let (mut on_b, _) = b.hello("/ws/customer", &visitor, json!([])).await;
    let mut stored = 0;
    let (mut refused_a, mut refused_b) = (false, false);
    for i in 0..60 {
        let (tab, refused) = if i % 2 == 0 {
            (&mut on_a, &mut refused_a)
        } else {
            (&mut on_b, &mut refused_b)
        };
        if sent(tab, &format!("m{i}")).await {
            stored += 1;
        } else {
            *refused = true;
        }
    }
    assert!(refused_a && refused_b, "both tabs refused at the end");
    // Never more than the limit over both nodes; at worst a lease's spare token short on each.
    assert!(stored <= 40, "{stored} stored over a limit of 40");
    assert!(stored >= 38, "only {stored} of 40 stored");
}

/// A counter of `/metrics` on `node`.
async fn node_metric(node: &Node, name: &str) -> f64 {
    let text = node
        .http
        .get(format!("{}/metrics", node.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    deskgate_tests::metric(&text, name).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_new_tickets_over_two_nodes_keeps_every_console_and_assigns_them_all() {
    // Small outbound queues (8 frames; staff consoles get eight times as many): the events of
    // the burst do not all fit at once. Two agents of capacity 50 take the 100 tickets. With
    // consoles' queues as short as customers' this closed them with 4009.
    const TICKETS: usize = 100;
    let bin = deskgate_binary();
    let db = TestDatabase::create().await;
    let redis = Redis::start();
    let (_dir, data) = shared_data();
    let env = [
        ("DESKGATE_AUTO_ASSIGN", "true"),
        ("DESKGATE_OUTBOUND_QUEUE", "8"),
        ("DESKGATE_RATE_LIMITS", "false"),
    ];
    let a = Node::start_with(bin, &data, &db, &redis, &env);
    let b = Node::start_with(bin, &data, &db, &redis, &env);
    add_agent(bin, &data, &db, "ann");
    add_agent(bin, &data, &db, "bob");
    add_staff(bin, &data, &db, "lea", "lead");
    ready_becomes(&a, 200).await;
    ready_becomes(&b, 200).await;
    let (mut ann, _) = a.hello("/ws/agent", &a.login("ann").await, json!([])).await;
    let (mut bob, _) = b.hello("/ws/agent", &b.login("bob").await, json!([])).await;
    let lead = a.login("lea").await;
    until("both agents are listed", || async {
        listed_agents(&a, &lead).await.len() == 2
    })
    .await;

    // Half the customers on each node, all at once.
    let nodes = std::sync::Arc::new([a, b]);
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..TICKETS {
        let nodes = nodes.clone();
        burst.spawn(async move {
            let node = &nodes[i % 2];
            let visitor = node.visitor().await;
            let (mut customer, _) = node.hello("/ws/customer", &visitor, json!([])).await;
            let ack = customer.send_text(None, "c1", &format!("burst {i}")).await;
            (customer, ack["ticket"].as_i64().expect("ticket"))
        });
    }
    let mut customers = Vec::new();
    while let Some(done) = burst.join_next().await {
        customers.push(done.expect("customer"));
    }
    let [a, b] = &*nodes;
    until("every ticket of the burst is assigned", || async {
        let (_, q) = a.get("/api/queue", Some(&lead)).await;
        q["stats"]["queued"] == 0 && q["stats"]["assigned"] == TICKETS
    })
    .await;

    // Both consoles are open and were told of every ticket they were given.
    let mut handed = std::collections::BTreeSet::new();
    for console in [&mut ann, &mut bob] {
        let pong = console.request(json!({"type": "ping"})).await;
        assert_eq!(pong["type"], "pong", "{pong}");
        for f in console.drain(Duration::from_millis(300)).await {
            if f["type"] == "ticket" && f["ticket"]["status"] == "assigned" {
                handed.insert(f["ticket"]["id"].as_i64().expect("id"));
            }
        }
    }
    let opened: std::collections::BTreeSet<i64> = customers.iter().map(|(_, t)| *t).collect();
    assert_eq!(
        handed, opened,
        "every ticket reached the console of its agent"
    );
    for node in [a, b] {
        assert_eq!(
            node_metric(node, "deskgate_closed_too_slow_total").await,
            0.0
        );
    }
}

type MediaLeg =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/media/pcm` on `node` and sends the start frame.
async fn media_leg(node: &Node, start: Value) -> MediaLeg {
    use futures_util::SinkExt;
    let url = format!("{}/media/pcm", node.base.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        start.to_string().into(),
    ))
    .await
    .expect("start frame");
    ws
}

/// What a leg gets next: a text frame as JSON, `"binary"` for audio, or the close code and
/// reason.
async fn next_on(leg: &mut MediaLeg) -> Result<Value, (u16, String)> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), leg.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Ok(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Message::Binary(_)))) => return Ok(json!("binary")),
            Ok(Some(Ok(Message::Close(c)))) => {
                return Err(c.map_or((0, String::new()), |c| {
                    (u16::from(c.code), c.reason.to_string())
                }))
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err((0, e.to_string())),
            Ok(None) => return Err((0, "ended".into())),
            Err(_) => panic!("nothing on the leg for 10 s"),
        }
    }
}

/// The close a leg gets, past any audio or events before it.
async fn closed(leg: &mut MediaLeg) -> (u16, String) {
    loop {
        if let Err(c) = next_on(leg).await {
            return c;
        }
    }
}

/// Calls across real node processes when things fail. The customer calls through node A; the
/// agent's leg is relayed by node B. With Redis dead, node B cannot find the call for a new
/// leg (1011), while the leg it relays already goes on. Once Redis is back empty, node A lists
/// its call again by itself. Node A killed (-9): the relayed leg is closed with 1011, and a new
/// leg through node B is refused because nothing answers where the call was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_call_leg_survives_redis_dying_and_is_closed_when_its_node_is_killed() {
    use futures_util::SinkExt;
    let bin = deskgate_binary();
    let db = TestDatabase::create().await;
    let mut redis = Redis::start();
    let (_dir, data) = shared_data();
    let mut a = Node::start(bin, &data, &db, &redis);
    let b = Node::start(bin, &data, &db, &redis);
    add_agent(bin, &data, &db, "ann");
    ready_becomes(&a, 200).await;
    ready_becomes(&b, 200).await;

    let visitor = a.visitor().await;
    let start = json!({"type": "start", "leg": "customer", "token": visitor, "codec": "pcm16", "rate": 16000});
    let mut customer = media_leg(&a, start).await;
    let started = next_on(&mut customer).await.unwrap();
    let (call, ticket) = (started["call"].clone(), started["ticket"].clone());
    let token = b.login("ann").await;
    let (mut desk, _) = b.hello("/ws/agent", &token, json!([])).await;
    let ok = desk
        .request(json!({"type": "claim", "ticket": ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    let join =
        json!({"type": "start", "token": token, "call": call, "codec": "pcm16", "rate": 16000});
    let mut leg = media_leg(&b, join.clone()).await;
    assert_eq!(next_on(&mut leg).await.unwrap()["type"], "started");

    // The customer talks all along, 20 ms at a time.
    let talking = tokio::spawn(async move {
        use tokio_tungstenite::tungstenite::Message;
        let frame = vec![0x10u8; 640];
        while customer
            .send(Message::Binary(frame.clone().into()))
            .await
            .is_ok()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert_eq!(next_on(&mut leg).await.unwrap(), "binary");

    // Redis dies: a new leg through node B cannot find the call; the relayed one goes on.
    redis.kill();
    let mut second = media_leg(&b, join.clone()).await;
    assert_eq!(
        closed(&mut second).await,
        (1011, "the call directory is unavailable".into())
    );
    // Half a second of audio: more than the sockets between hold.
    for _ in 0..25 {
        assert_eq!(next_on(&mut leg).await.unwrap(), "binary");
    }
    // Redis comes back empty; node A lists its call again within a third of 30 s.
    redis.restart();
    until("node B finds the call again", || async {
        b.get(
            &format!("/api/calls/{}", call.as_str().unwrap()),
            Some(&token),
        )
        .await
        .0 == 200
    })
    .await;

    // Node A is killed with the call on it.
    a.kill();
    assert_eq!(
        closed(&mut leg).await,
        (1011, "the node holding the call went away".into())
    );
    let mut third = media_leg(&b, join).await;
    assert_eq!(
        closed(&mut third).await,
        (1011, "the node holding the call cannot be reached".into())
    );
    talking.abort();
}
