//! Many nodes: real `deskgate` processes on loopback sharing a PostgreSQL database and a
//! `redis-server`, the way they run behind a load balancer.

use crate::config::deskgate_binary;
use deskgate_tests::cluster::{add_agent, shared_data, Node, Redis};
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
