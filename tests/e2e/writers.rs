//! Two nodes writing to one PostgreSQL database at once. Each transaction there locks only what
//! it decides (a ticket, a customer, an agent's load, the audit log's head, ids chosen before
//! sealing; gateway/src/store/postgres): the races below, run at once through two nodes' own
//! connection pools, must end as the single writer of one node would end them. And one node's
//! appends, batched by its store's appender, on whichever store the suite runs on: a batch
//! that numbers several messages of one conversation, or holds one client id twice, must end
//! as the appends written one at a time would.

use deskgate::clock::Clock;
use deskgate::ids::{CustomerId, Seq, TicketId, UserId};
use deskgate::store::{
    Author, AuthorKind, Customer, NewAttachment, NewCustomer, NewMessage, Store, StoreError,
};
use deskgate_tests::TestApp;
use recorder::audit::{Action, Entry, Outcome, GENESIS};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Two nodes on one fresh database, each one's store, and agents of these names and
/// capacities (made before the second node starts, which would otherwise find no admin and
/// make a bootstrap secret of its own).
async fn two_nodes(agents: &[(&str, u32)]) -> (TestApp, TestApp, [Arc<dyn Store>; 2], Vec<UserId>) {
    let a = TestApp::builder().on_postgres().await.start().await;
    let mut ids = Vec::new();
    for (name, capacity) in agents {
        ids.push(UserId(a.staff(name, "agent", *capacity).await.id));
    }
    let b = TestApp::builder().node_of(&a).start().await;
    let stores = [a.app.store.clone(), b.app.store.clone()];
    (a, b, stores, ids)
}

fn from_customer(c: &Customer) -> Author {
    Author {
        kind: AuthorKind::Customer,
        id: Some(c.id.0),
        name: c.name.clone(),
    }
}

fn said<'a>(author: Author, text: &'a str, client_id: &'a str) -> NewMessage<'a> {
    NewMessage {
        author,
        text,
        client_id,
        blocked: false,
        attachment: None,
    }
}

/// A customer of the demo site: a new visitor, or one whose site vouches for `verified_as`.
fn customer_of(name: &str, verified_as: Option<&str>) -> NewCustomer {
    NewCustomer {
        site: "demo".into(),
        external_id: verified_as.map(str::to_string),
        name: name.into(),
        email: None,
        phone: None,
        verified: verified_as.is_some(),
    }
}

async fn new_customer(store: &dyn Store, app: &TestApp, name: &str) -> Customer {
    let c = customer_of(name, None);
    store.upsert_customer(c, app.clock.now()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_resends_claims_and_first_messages_from_two_nodes_at_once_end_as_one_writer_ends_them(
) {
    let (a, _b, stores, agents) =
        two_nodes(&[("grace", 10), ("hopper", 10), ("lovelace", 2)]).await;
    let now = a.clock.now();
    let customers: Vec<Customer> = {
        let mut out = Vec::new();
        for i in 0..6 {
            out.push(new_customer(&*stores[i % 2], &a, &format!("customer {i}")).await);
        }
        out
    };

    // Each customer's first message, sent through both nodes at once: one ticket each, both
    // messages in it.
    let mut first = JoinSet::new();
    for (i, c) in customers.iter().enumerate() {
        for (n, store) in stores.iter().enumerate() {
            let (store, c) = (store.clone(), c.clone());
            let id = format!("first-{i}-{n}");
            first.spawn(async move {
                let msg = said(from_customer(&c), "hello", &id);
                store
                    .append_customer_message(&c, None, msg, now, now)
                    .await
                    .map(|done| (c.id, done.ticket, done.message.conversation))
            });
        }
    }
    let mut tickets = std::collections::BTreeMap::new();
    while let Some(done) = first.join_next().await {
        let (customer, ticket, conversation) = done.unwrap().unwrap();
        let known = tickets.entry(customer).or_insert((ticket, conversation));
        assert_eq!(
            *known,
            (ticket, conversation),
            "one ticket for {customer:?}"
        );
    }
    assert_eq!(tickets.len(), customers.len());

    // One message sent four times at once, twice through each node (a tab resending what it
    // sent before it lost its socket): stored once, and each send is answered with it.
    let mut again = JoinSet::new();
    for c in &customers {
        let (ticket, conversation) = tickets[&c.id];
        for n in [0, 0, 1, 1] {
            let (store, c) = (stores[n].clone(), c.clone());
            again.spawn(async move {
                let id = format!("again-{}", c.id.0);
                let msg = said(from_customer(&c), "are you there?", &id);
                let open = Some((ticket, conversation));
                let done = store.append_customer_message(&c, open, msg, now, now).await;
                let done = done.unwrap();
                (c.id, done.message.seq, done.duplicate)
            });
        }
    }
    let mut answers = std::collections::BTreeMap::<CustomerId, Vec<(Seq, bool)>>::new();
    while let Some(done) = again.join_next().await {
        let (customer, seq, duplicate) = done.unwrap();
        answers.entry(customer).or_default().push((seq, duplicate));
    }
    for (customer, a) in &answers {
        assert_eq!(
            a.iter().filter(|(_, dup)| !dup).count(),
            1,
            "{customer:?}: {a:?}"
        );
        assert!(
            a.iter().all(|(seq, _)| *seq == Seq(3)),
            "{customer:?}: {a:?}"
        );
    }

    // Then 20 messages from each customer through each node at once, while two agents, one
    // per node, race for each of the first three tickets, and a third, who may hold two,
    // claims each of the other three through both nodes.
    let (racers, busy) = ([agents[0], agents[1]], agents[2]);
    let mut work = JoinSet::new();
    for (i, c) in customers.iter().enumerate() {
        let (ticket, conversation) = tickets[&c.id];
        for (n, store) in stores.iter().enumerate() {
            let (s, c) = (store.clone(), c.clone());
            work.spawn(async move {
                for k in 0..20 {
                    let id = format!("{}-{n}-{k}", c.id.0);
                    let msg = said(from_customer(&c), "more", &id);
                    let open = Some((ticket, conversation));
                    let done = s.append_customer_message(&c, open, msg, now, now).await;
                    assert!(!done.unwrap().duplicate);
                }
                None
            });
            let agent = if i < 3 { racers[n] } else { busy };
            let s = store.clone();
            work.spawn(async move { Some((agent, s.claim(ticket, agent, now).await)) });
        }
    }
    let mut won = std::collections::BTreeMap::<TicketId, UserId>::new();
    let mut over_capacity = 0;
    while let Some(done) = work.join_next().await {
        match done.unwrap() {
            None => {}
            Some((agent, Ok(t))) => {
                let first = won.insert(t.ticket.id, agent);
                assert!(first.is_none(), "ticket {:?} claimed twice", t.ticket.id);
            }
            // Claimed already: by the other racer, or by the busy agent through the other node.
            Some((_, Err(StoreError::Conflict(_)))) => {}
            Some((agent, Err(StoreError::Capacity))) => {
                assert_eq!(agent, busy);
                over_capacity += 1;
            }
            Some((_, Err(e))) => panic!("a claim failed: {e:?}"),
        }
    }
    let held_by_busy = won.values().filter(|a| **a == busy).count();
    assert_eq!(held_by_busy, 2, "at her capacity, no more: {won:?}");
    assert!(over_capacity >= 1);
    assert_eq!(
        won.len(),
        5,
        "the racers' three and two of the busy agent's: {won:?}"
    );

    // Every conversation: 2 first messages, the one sent four times, 40 more and, if claimed,
    // one "joined" notice, numbered from 1 without a gap.
    for (ticket, conversation) in tickets.values() {
        let messages = stores[0]
            .messages_after(*conversation, Seq(0), 1000)
            .await
            .unwrap();
        let seqs: Vec<i64> = messages.iter().map(|m| m.seq.0).collect();
        let total = if won.contains_key(ticket) { 44 } else { 43 };
        assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "ticket {ticket:?}");
        let ids: BTreeSet<_> = messages
            .iter()
            .filter_map(|m| m.client_id.clone())
            .collect();
        assert_eq!(ids.len(), 43, "every client id once in ticket {ticket:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ids_chosen_before_sealing_and_the_audit_chain_stay_whole_with_two_nodes_writing() {
    let (a, _b, stores, agents) = two_nodes(&[("grace", 5)]).await;
    let now = a.clock.now();
    let agent = agents[0];
    let customer = new_customer(&*stores[0], &a, "Ada").await;
    let msg = said(from_customer(&customer), "hello", "first");
    let opened = stores[0]
        .append_customer_message(&customer, None, msg, now, now)
        .await
        .unwrap();
    let ticket = opened.ticket;
    stores[0].claim(ticket, agent, now).await.unwrap();

    let mut work = JoinSet::new();
    for (n, store) in stores.iter().enumerate() {
        for k in 0..10 {
            // A verified identity seen on both nodes at once is one customer; new visitors
            // are new customers, each with an id of its own.
            let (s, clock) = (store.clone(), a.clock.clone());
            work.spawn(async move {
                let c = customer_of("Verified", Some("crm-42"));
                let verified = s.upsert_customer(c, clock.now()).await.unwrap().id;
                let c = customer_of(&format!("visitor {n}-{k}"), None);
                let visitor = s.upsert_customer(c, clock.now()).await.unwrap().id;
                Ids::Customers(verified, visitor)
            });
            let s = store.clone();
            work.spawn(async move {
                let note = s
                    .add_note(ticket, agent, &format!("note-{n}-{k}"), "a note", now)
                    .await
                    .unwrap();
                Ids::Note(note.0.id.0)
            });
            let s = store.clone();
            work.spawn(async move {
                let file = NewAttachment {
                    content_type: "text/plain",
                    bytes: zeroize::Zeroizing::new(format!("file {n}-{k}").into_bytes()),
                };
                let mut msg = said(
                    Author {
                        kind: AuthorKind::Agent,
                        id: Some(agent.0),
                        name: "grace".into(),
                    },
                    "file.txt",
                    "",
                );
                let id = format!("file-{n}-{k}");
                msg.client_id = &id;
                msg.attachment = Some(&file);
                let done = s
                    .append_agent_message(ticket, agent, msg, now)
                    .await
                    .unwrap();
                Ids::Attachment(done.message.attachment.expect("stored file").id.0)
            });
            let s = store.clone();
            work.spawn(async move {
                let entry = Entry::new(now.0, Action::TicketRead, Outcome::Allowed);
                Ids::Audit(s.append_audit(&entry).await.unwrap().seq)
            });
        }
    }
    let (mut verified, mut visitors, mut notes, mut files, mut audit) = (
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
    );
    while let Some(done) = work.join_next().await {
        match done.unwrap() {
            Ids::Customers(v, c) => {
                verified.insert(v);
                visitors.insert(c);
            }
            Ids::Note(id) => assert!(notes.insert(id)),
            Ids::Attachment(id) => assert!(files.insert(id)),
            Ids::Audit(seq) => assert!(audit.insert(seq)),
        }
    }
    assert_eq!(verified.len(), 1, "one verified customer: {verified:?}");
    assert_eq!(visitors.len(), 20);
    assert!(visitors.iter().all(|c| !verified.contains(c)));
    assert_eq!(notes.len(), 20);
    assert_eq!(stores[1].notes(ticket).await.unwrap().len(), 20);
    assert_eq!(files.len(), 20);

    // The chain links every entry, in order, to the one before it.
    let records = stores[1].audit_after(0, 10_000).await.unwrap();
    let mut prev = GENESIS;
    for r in &records {
        assert_eq!(r.hash, r.entry.chain_hash(r.seq, &prev), "entry {}", r.seq);
        prev = r.hash;
    }
    let seqs: Vec<i64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert!(audit.iter().all(|s| seqs.contains(s)));
}

enum Ids {
    Customers(CustomerId, CustomerId),
    Note(i64),
    Attachment(i64),
    Audit(i64),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_batched_together_are_numbered_sealed_and_deduplicated_as_one_at_a_time() {
    let app = TestApp::start().await;
    let store = app.app.store.clone();
    let grace = UserId(app.staff("grace", "agent", 10).await.id);
    let hopper = UserId(app.staff("hopper", "agent", 10).await.id);
    let now = app.clock.now();
    let agent_as = |id: UserId, name: &str| Author {
        kind: AuthorKind::Agent,
        id: Some(id.0),
        name: name.into(),
    };

    // Six customers, each with a ticket from a first message; grace holds the first three.
    let mut tickets = Vec::new();
    for i in 0..6 {
        let c = new_customer(&*store, &app, &format!("customer {i}")).await;
        let msg = said(from_customer(&c), "hello", "first");
        let done = store
            .append_customer_message(&c, None, msg, now, now)
            .await
            .unwrap();
        if i < 3 {
            store.claim(done.ticket, grace, now).await.unwrap();
        }
        tickets.push((c, done.ticket, done.message.conversation));
    }

    // At once: 25 messages from each customer, 25 from grace into each ticket she holds, each
    // customer's resend of one message four times, grace's of one three times into each of
    // hers, and hopper writing into a ticket he does not hold.
    let mut work = JoinSet::new();
    for (i, (c, ticket, conversation)) in tickets.iter().cloned().enumerate() {
        let open = Some((ticket, conversation));
        let mut sends: Vec<(Author, String, String)> = (0..25)
            .map(|k| {
                let text = format!("customer {} says {k}", c.id.0);
                (from_customer(&c), format!("c-{k}"), text)
            })
            .collect();
        sends.extend((0..4).map(|_| (from_customer(&c), "again".into(), "again".into())));
        if i < 3 {
            let grace_as = || agent_as(grace, "grace");
            // An author's client ids are hers across tickets: one set for each ticket.
            let send = |k: &dyn std::fmt::Display, text| (grace_as(), format!("a{i}-{k}"), text);
            sends.extend((0..25).map(|k| send(&k, format!("grace {k}"))));
            sends.extend((0..3).map(|_| send(&"again", "grace again".into())));
        }
        for (author, id, text) in sends {
            let (s, c) = (store.clone(), c.clone());
            work.spawn(async move {
                let msg = said(author, &text, &id);
                let done = match msg.author.kind {
                    AuthorKind::Customer => {
                        s.append_customer_message(&c, open, msg, now, now).await
                    }
                    _ => s.append_agent_message(ticket, grace, msg, now).await,
                };
                let done = done.unwrap();
                assert_eq!(done.message.conversation, conversation);
                ((conversation, id), (done.message.seq, done.duplicate))
            });
        }
    }
    let held = tickets[0].1;
    let intruder = {
        let (s, author) = (store.clone(), agent_as(hopper, "hopper"));
        tokio::spawn(async move {
            let msg = said(author, "not mine", "h-1");
            s.append_agent_message(held, hopper, msg, now).await
        })
    };
    let mut answers = std::collections::BTreeMap::<_, Vec<(Seq, bool)>>::new();
    while let Some(done) = work.join_next().await {
        let (key, answer) = done.unwrap();
        answers.entry(key).or_default().push(answer);
    }
    assert!(intruder.await.unwrap().is_err(), "hopper does not hold it");

    for (i, (c, _, conversation)) in tickets.iter().enumerate() {
        let messages = store
            .messages_after(*conversation, Seq(0), 1000)
            .await
            .unwrap();
        // The first message, grace's "joined" notice, the customer's 25 and resend, and
        // grace's 25 and resend: numbered from 1 without a gap.
        let total = if i < 3 { 2 + 26 + 26 } else { 1 + 26 };
        let seqs: Vec<i64> = messages.iter().map(|m| m.seq.0).collect();
        assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "customer {i}");
        let by_id: std::collections::BTreeMap<&str, &deskgate::store::Message> = messages
            .iter()
            .filter_map(|m| m.client_id.as_deref().map(|id| (id, m)))
            .filter(|(id, _)| *id != "first")
            .collect();
        assert_eq!(
            by_id.len(),
            total as usize - if i < 3 { 2 } else { 1 },
            "customer {i}"
        );
        assert!(!by_id.contains_key("h-1"));
        for (id, m) in &by_id {
            // Each opens (sealed as the record it is stored as) to what its author sent.
            let grace_prefix = format!("a{i}-");
            let expected = match (id.strip_prefix("c-"), id.strip_prefix(&grace_prefix)) {
                _ if *id == "again" => "again".to_string(),
                (_, Some("again")) => "grace again".to_string(),
                (Some(k), _) => format!("customer {} says {k}", c.id.0),
                (_, Some(k)) => format!("grace {k}"),
                _ => panic!("{id}"),
            };
            assert_eq!(m.text, expected, "customer {i}, {id}");
            let kind = if id.starts_with(&grace_prefix) {
                AuthorKind::Agent
            } else {
                AuthorKind::Customer
            };
            assert_eq!(m.from.kind, kind, "customer {i}, {id}");
            // Every send was answered with the message stored for it, and only one of a
            // resend's sends as new.
            let a = &answers[&(*conversation, id.to_string())];
            assert!(a.iter().all(|(seq, _)| *seq == m.seq), "{id}: {a:?}");
            assert_eq!(a.iter().filter(|(_, dup)| !dup).count(), 1, "{id}: {a:?}");
        }
    }
}
