//! Access grants through the real server: a closed transcript opens only through a request
//! approved by someone else, for a limited time that the test's clock runs out; requests
//! nobody reviews expire; revocation ends access at once; nobody approves their own request.

use deskgate_tests::{Staff, TestApp};
use serde_json::{json, Value};
use std::time::Duration;

const REASON: &str = "chargeback dispute #4411 needs the chat record";
const HOUR: Duration = Duration::from_secs(3600);

/// A ticket that was resolved and then closed once the reopen window passed (72 h of the
/// test's clock; sessions older than that have expired, so log in again afterwards).
async fn closed_ticket(app: &TestApp) -> (i64, i64) {
    let closer = app.agent("closer").await;
    let (mut ws, _) = app.agent_ws(&closer).await;
    let mut c = app.customer_with_ticket("My order never arrived").await;
    ws.request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    ws.request(
        json!({"type": "send", "ticket": c.ticket, "client_id": "a-1", "text": "Looking into it"}),
    )
    .await;
    let ok = ws
        .request(json!({"type": "resolve", "ticket": c.ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    c.ws.recv_type("ticket").await;
    app.clock.advance(73 * HOUR);
    assert_eq!(app.close_resolved().await, vec![c.ticket]);
    (c.ticket, c.visitor.customer_id)
}

async fn request(app: &TestApp, who: &Staff, ticket: i64, minutes: Option<u64>) -> (u16, Value) {
    let mut body = json!({"kind": "transcript", "object": ticket, "reason": REASON});
    if let Some(m) = minutes {
        body["duration_minutes"] = json!(m);
    }
    app.post("/api/grants", Some(&who.token), body).await
}

async fn review(app: &TestApp, who: &Staff, grant: i64, verb: &str) -> (u16, Value) {
    app.post(
        &format!("/api/grants/{grant}/{verb}"),
        Some(&who.token),
        json!({"note": "ok for the dispute"}),
    )
    .await
}

async fn read(app: &TestApp, who: &Staff, grant: i64) -> (u16, Value) {
    app.get(&format!("/api/grants/{grant}/transcript"), Some(&who.token))
        .await
}

/// A supervisor and an approver, logged in after the ticket closed.
async fn people(app: &TestApp) -> (Staff, Staff) {
    (
        app.staff("sam", "supervisor", 5).await,
        app.staff("april", "approver", 5).await,
    )
}

#[tokio::test]
async fn a_closed_transcript_opens_only_through_an_approved_grant() {
    let app = TestApp::start().await;
    let (ticket, customer) = closed_ticket(&app).await;
    let (sam, april) = people(&app).await;
    let sue = app.staff("sue", "supervisor", 5).await;
    let admin = app.admin().await;

    for who in [&sam, &admin] {
        let (status, body) = app
            .get(&format!("/api/tickets/{ticket}/messages"), Some(&who.token))
            .await;
        assert_eq!(status, 403, "no grant, no transcript: {body}");
    }
    // Nor over the socket, by `sync` or by resuming the conversation.
    let (_, detail) = app
        .get(&format!("/api/tickets/{ticket}"), Some(&sam.token))
        .await;
    let conversation = detail["ticket"]["conversation"].as_i64().unwrap();
    let (mut ws, _) = app
        .hello(
            "/ws/agent",
            &sam.token,
            json!([{"conversation": conversation, "after": 0}]),
        )
        .await;
    let err = ws.recv_type("error").await;
    assert_eq!(err["code"], "not_found", "{err}");
    let err = ws
        .request(json!({"type": "sync", "ticket": ticket, "after": 0}))
        .await;
    assert_eq!(err["code"], "forbidden", "{err}");
    for f in ws.drain(Duration::from_millis(300)).await {
        assert_ne!(f["type"], "message", "no message of a closed ticket: {f}");
    }

    let (status, g) = request(&app, &sam, ticket, Some(30)).await;
    assert_eq!(status, 201, "{g}");
    assert_eq!(g["status"], "pending");
    assert_eq!(g["duration_minutes"], 30);
    let grant = g["id"].as_i64().unwrap();
    assert_eq!(
        read(&app, &sam, grant).await.0,
        409,
        "pending opens nothing"
    );

    let (status, g) = review(&app, &april, grant, "approve").await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["status"], "approved");
    assert_eq!(g["reviewer"], april.id);

    let (status, t) = read(&app, &sam, grant).await;
    assert_eq!(status, 200, "{t}");
    let texts: Vec<&str> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert!(texts.contains(&"My order never arrived"), "{texts:?}");
    assert!(texts.contains(&"Looking into it"), "{texts:?}");
    for other in [&sue, &april, &admin] {
        let (status, _) = read(&app, other, grant).await;
        assert_eq!(status, 403, "only the requester reads through a grant");
    }

    // Approvers and admins see every request; requesters their own; others nothing.
    for who in [&april, &admin, &sam] {
        let (status, list) = app.get("/api/grants", Some(&who.token)).await;
        assert_eq!(status, 200);
        assert_eq!(list.as_array().unwrap().len(), 1, "{}", who.username);
    }
    let (_, list) = app.get("/api/grants", Some(&sue.token)).await;
    assert_eq!(list, json!([]));
    let (status, _) = app
        .get(&format!("/api/grants/{grant}"), Some(&sue.token))
        .await;
    assert_eq!(status, 403);

    let trail = app.audit(&format!("customer={customer}")).await;
    let steps: Vec<(&str, &str, Option<i64>)> = trail
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("grant_"))
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
                e["actor"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("grant_used", "denied", Some(admin.id)),
            ("grant_used", "denied", Some(april.id)),
            ("grant_used", "denied", Some(sue.id)),
            ("grant_used", "allowed", Some(sam.id)),
            ("grant_approved", "allowed", Some(april.id)),
            ("grant_used", "denied", Some(sam.id)),
            ("grant_requested", "allowed", Some(sam.id)),
        ]
    );
    let requested = trail
        .iter()
        .find(|e| e["action"] == "grant_requested")
        .unwrap();
    assert!(requested["detail"].as_str().unwrap().contains(REASON));
}

#[tokio::test]
async fn nobody_approves_their_own_request_even_as_an_approver() {
    let app = TestApp::start().await;
    let (ticket, _) = closed_ticket(&app).await;
    let (sam, april) = people(&app).await;
    let admin = app.admin().await;

    let (status, _) = request(&app, &april, ticket, None).await;
    assert_eq!(status, 403, "approvers do not request");
    let (_, g) = request(&app, &sam, ticket, None).await;
    let grant = g["id"].as_i64().unwrap();
    assert_eq!(g["duration_minutes"], 60, "one hour by default");
    let (status, _) = review(&app, &sam, grant, "approve").await;
    assert_eq!(status, 403, "a supervisor does not review");

    // Sam becomes an approver; his own request stays out of his reach (the rule compares
    // the reviewer with the requester), and the role change has revoked it anyway.
    let (status, _) = app
        .patch(
            &format!("/api/users/{}", sam.id),
            Some(&admin.token),
            json!({"role": "approver"}),
        )
        .await;
    assert_eq!(status, 200);
    let sam = app.login("sam").await;
    for verb in ["approve", "deny"] {
        let (status, body) = review(&app, &sam, grant, verb).await;
        assert_eq!(status, 403, "{verb}: {body}");
    }
    let (_, g) = app
        .get(&format!("/api/grants/{grant}"), Some(&april.token))
        .await;
    assert_eq!(g["status"], "revoked", "{g}");

    let refused = app
        .audit(&format!(
            "object_kind=grant&object_id={grant}&outcome=denied"
        ))
        .await;
    let own: Vec<&Value> = refused
        .iter()
        .filter(|e| e["detail"] == "own request")
        .collect();
    assert_eq!(own.len(), 2, "{refused:?}");
    assert!(own
        .iter()
        .all(|e| e["actor"] == sam.id && e["role"] == "approver"));

    let sue = app.staff("sue", "supervisor", 5).await;
    let (_, g) = request(&app, &sue, ticket, None).await;
    let grant = g["id"].as_i64().unwrap();
    let (status, g) = review(&app, &april, grant, "deny").await;
    assert_eq!(status, 200);
    assert_eq!(g["status"], "denied");
    let (status, _) = review(&app, &april, grant, "approve").await;
    assert_eq!(status, 409, "a reviewed request is not reviewed again");
}

#[tokio::test]
async fn an_approved_grant_expires_with_the_clock() {
    let app = TestApp::start().await;
    let (ticket, _) = closed_ticket(&app).await;
    let (sam, april) = people(&app).await;
    let (_, g) = request(&app, &sam, ticket, Some(30)).await;
    let grant = g["id"].as_i64().unwrap();
    review(&app, &april, grant, "approve").await;
    app.clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(read(&app, &sam, grant).await.0, 200);

    app.clock.advance(Duration::from_secs(60));
    let (status, body) = read(&app, &sam, grant).await;
    assert_eq!(status, 409, "{body}");
    let (_, g) = app
        .get(&format!("/api/grants/{grant}"), Some(&april.token))
        .await;
    assert_eq!(g["status"], "expired");
    let expired = app
        .audit(&format!(
            "action=grant_expired&object_kind=grant&object_id={grant}"
        ))
        .await;
    assert_eq!(expired.len(), 1, "expiry is recorded once: {expired:?}");
    assert_eq!(expired[0]["role"], "system");
    assert!(expired[0]["detail"]
        .as_str()
        .unwrap()
        .contains("access period ended"));
}

#[tokio::test]
async fn a_request_nobody_reviews_expires_after_a_day() {
    let app = TestApp::start().await;
    let (ticket, _) = closed_ticket(&app).await;
    let (sam, _) = people(&app).await;
    let (_, g) = request(&app, &sam, ticket, None).await;
    let grant = g["id"].as_i64().unwrap();

    app.clock.advance(23 * HOUR);
    let april = app.login("april").await;
    let (_, g) = app
        .get(&format!("/api/grants/{grant}"), Some(&april.token))
        .await;
    assert_eq!(g["status"], "pending");
    app.clock.advance(HOUR);
    let april = app.login("april").await;
    let (status, body) = review(&app, &april, grant, "approve").await;
    assert_eq!(status, 409, "{body}");
    let (_, g) = app
        .get(&format!("/api/grants/{grant}"), Some(&april.token))
        .await;
    assert_eq!(g["status"], "expired");
    let expired = app
        .audit(&format!(
            "action=grant_expired&object_kind=grant&object_id={grant}"
        ))
        .await;
    assert_eq!(expired.len(), 1);
    assert!(expired[0]["detail"]
        .as_str()
        .unwrap()
        .contains("not reviewed in time"));
}

#[tokio::test]
async fn a_revoked_grant_stops_working_at_once() {
    let app = TestApp::start().await;
    let (ticket, _) = closed_ticket(&app).await;
    let (sam, april) = people(&app).await;
    let (_, g) = request(&app, &sam, ticket, None).await;
    let grant = g["id"].as_i64().unwrap();
    review(&app, &april, grant, "approve").await;
    assert_eq!(read(&app, &sam, grant).await.0, 200);

    let (status, _) = review(&app, &sam, grant, "revoke").await;
    assert_eq!(status, 403, "the requester does not revoke");
    let (status, g) = review(&app, &april, grant, "revoke").await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["status"], "revoked");
    assert_eq!(g["ended_by"], april.id);
    assert_eq!(read(&app, &sam, grant).await.0, 409);
    assert_eq!(review(&app, &april, grant, "revoke").await.0, 409);
    let revoked = app
        .audit(&format!("action=grant_revoked&object_id={grant}"))
        .await;
    let who: Vec<(&str, i64)> = revoked
        .iter()
        .map(|e| (e["outcome"].as_str().unwrap(), e["actor"].as_i64().unwrap()))
        .collect();
    assert_eq!(who, vec![("allowed", april.id), ("denied", sam.id)]);
}

#[tokio::test]
async fn bad_requests_are_refused_clearly() {
    let app = TestApp::start().await;
    let (ticket, _) = closed_ticket(&app).await;
    let (sam, _) = people(&app).await;
    let grace = app.agent("grace").await;
    let open = app.customer_with_ticket("Still open").await;

    let cases = [
        (
            json!({"kind": "transcript", "object": ticket}),
            400,
            "reason",
        ),
        (
            json!({"kind": "transcript", "object": ticket, "reason": "short"}),
            400,
            "reason",
        ),
        (
            json!({"kind": "transcript", "object": ticket, "reason": REASON, "duration_minutes": 481}),
            400,
            "duration",
        ),
        (
            json!({"kind": "transcript", "object": ticket, "reason": REASON, "duration_minutes": 0}),
            400,
            "duration",
        ),
        (
            json!({"kind": "recording", "object": 999999, "reason": REASON}),
            404,
            "not found",
        ),
        (
            json!({"kind": "transcript", "object": open.ticket, "reason": REASON}),
            409,
            "closed",
        ),
        (
            json!({"kind": "transcript", "object": 999999, "reason": REASON}),
            404,
            "not found",
        ),
    ];
    for (body, want, says) in cases {
        let (status, resp) = app
            .post("/api/grants", Some(&sam.token), body.clone())
            .await;
        assert_eq!(status, want, "{body}: {resp}");
        let message = resp["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    let (status, _) = request(&app, &grace, ticket, None).await;
    assert_eq!(status, 403, "agents do not request");
    let (_, list) = app.get("/api/grants", Some(&sam.token)).await;
    assert_eq!(list, json!([]), "nothing was stored");
}

#[tokio::test]
async fn approving_needs_the_approvers_fresh_second_factor() {
    use deskgate::clock::Clock;
    use deskgate::store::Role;
    use verify::totp::{code_at, seed_from_base32};

    let app = TestApp::builder()
        .config(|c| c.verification.mfa_roles = vec![Role::Approver])
        .start()
        .await;
    let (ticket, _) = closed_ticket(&app).await;
    let sam = app.staff("sam", "supervisor", 5).await;
    // The approver's first login opens only the enrolment; enrol, then log in with a code.
    let enrolling = app.staff("april", "approver", 5).await;
    let (status, e) = app
        .post("/api/me/mfa/totp", Some(&enrolling.token), json!({}))
        .await;
    assert_eq!(status, 201, "{e}");
    let seed = seed_from_base32(e["secret"].as_str().unwrap()).unwrap();
    let now_code = |app: &TestApp| code_at(&seed, (app.clock.now().millis() / 1000) as u64);
    let (status, body) = app
        .post(
            "/api/me/mfa/totp/confirm",
            Some(&enrolling.token),
            json!({"code": now_code(&app)}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.clock.advance(Duration::from_secs(30));
    let login_code = now_code(&app);
    let (status, body) = app
        .post(
            "/api/session",
            None,
            json!({"username": "april", "password": deskgate_tests::PASSWORD, "otp": login_code}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let april = Staff {
        token: body["token"].as_str().unwrap().to_string(),
        ..enrolling
    };

    let (_, g) = request(&app, &sam, ticket, None).await;
    let id = g["id"].as_i64().unwrap();
    let path = format!("/api/grants/{id}/approve");
    let approve = |otp: Option<&str>| {
        let mut body = json!({"note": "ok for the dispute"});
        if let Some(o) = otp {
            body["otp"] = json!(o);
        }
        app.post(&path, Some(&april.token), body)
    };

    let (status, body) = approve(None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "second_factor_required");
    let (status, _) = approve(Some("000000")).await;
    assert_eq!(status, 401, "a wrong code");
    // The code that opened the session is spent: a replay does not approve.
    let (status, _) = approve(Some(&login_code)).await;
    assert_eq!(status, 401, "a replayed code");
    let (_, still) = app
        .get(&format!("/api/grants/{id}"), Some(&sam.token))
        .await;
    assert_eq!(still["status"], "pending", "{still}");
    assert_ne!(read(&app, &sam, id).await.0, 200);

    // Wrong codes make the next attempt wait; a fresh code after that approves.
    app.clock.advance(Duration::from_secs(60));
    let (status, body) = approve(Some(&now_code(&app))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "approved");
    assert_eq!(read(&app, &sam, id).await.0, 200);

    let trail = app
        .audit(&format!("object_kind=grant&object_id={id}"))
        .await;
    let outcomes: Vec<(&str, &str)> = trail
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        outcomes
            .iter()
            .filter(|o| **o == ("grant_approved", "failed"))
            .count()
            == 3,
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&("grant_approved", "allowed")),
        "{outcomes:?}"
    );
}

/// A closed ticket's subject is the first line the customer typed and its notes are part of
/// the record: outside a grant, the ticket, the lists and the customer's history show them
/// empty; the grant's transcript shows them.
#[tokio::test]
async fn a_closed_tickets_subject_and_notes_open_only_through_the_grant() {
    let app = TestApp::start().await;
    let closer = app.agent("closer").await;
    let (mut ws, _) = app.agent_ws(&closer).await;
    let mut c = app
        .customer_with_ticket("My order 7731 never arrived")
        .await;
    ws.request(json!({"type": "claim", "ticket": c.ticket}))
        .await;
    let ok = ws
        .request(json!({"type": "note", "ticket": c.ticket, "client_id": "n1", "text": "refund approved by finance"}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    ws.request(json!({"type": "resolve", "ticket": c.ticket}))
        .await;
    c.ws.recv_type("ticket").await;
    app.clock.advance(73 * HOUR);
    assert_eq!(app.close_resolved().await, vec![c.ticket]);
    let (sam, april) = people(&app).await;
    let admin = app.admin().await;
    let customer = c.visitor.customer_id;

    for who in [&sam, &admin] {
        let (status, detail) = app
            .get(&format!("/api/tickets/{}", c.ticket), Some(&who.token))
            .await;
        assert_eq!(status, 200, "{detail}");
        assert_eq!(detail["ticket"]["status"], "closed");
        assert_eq!(detail["ticket"]["subject"], "", "{detail}");
        assert_eq!(detail["notes"], json!([]), "{detail}");
        for path in [
            "/api/tickets?status=closed".to_string(),
            format!("/api/customers/{customer}/tickets"),
        ] {
            let (status, list) = app.get(&path, Some(&who.token)).await;
            assert_eq!(status, 200, "{path}: {list}");
            let text = list.to_string();
            assert!(
                text.contains(&format!("\"id\":{}", c.ticket)),
                "{path}: {text}"
            );
            assert!(!text.contains("7731"), "{path} shows the subject: {text}");
        }
        let (status, _) = app
            .get(
                &format!("/api/tickets/{}/notes", c.ticket),
                Some(&who.token),
            )
            .await;
        assert_eq!(status, 403, "notes of a closed ticket need a grant");
    }

    let (_, g) = request(&app, &sam, c.ticket, None).await;
    let grant = g["id"].as_i64().unwrap();
    review(&app, &april, grant, "approve").await;
    let (status, t) = read(&app, &sam, grant).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["ticket"]["subject"], "My order 7731 never arrived");
    assert_eq!(t["notes"][0]["text"], "refund approved by finance", "{t}");
}

/// Reading through a grant needs the requester's current role to allow requesting one: a
/// supervisor demoted after the approval reads nothing, and a change of role or a
/// deactivation revokes the user's pending requests and active grants at once (audited).
#[tokio::test]
async fn a_demoted_or_deactivated_requester_loses_their_grants() {
    let app = TestApp::start().await;
    let (ticket, _) = closed_ticket(&app).await;
    let (sam, april) = people(&app).await;
    let sue = app.staff("sue", "supervisor", 5).await;
    let admin = app.admin().await;
    let (_, g) = request(&app, &sam, ticket, None).await;
    let active = g["id"].as_i64().unwrap();
    review(&app, &april, active, "approve").await;
    let (_, g) = request(&app, &sam, ticket, Some(30)).await;
    let pending = g["id"].as_i64().unwrap();
    let (_, g) = request(&app, &sue, ticket, None).await;
    let sues = g["id"].as_i64().unwrap();
    review(&app, &april, sues, "approve").await;
    assert_eq!(read(&app, &sam, active).await.0, 200);

    let (status, _) = app
        .patch(
            &format!("/api/users/{}", sam.id),
            Some(&admin.token),
            json!({"role": "agent"}),
        )
        .await;
    assert_eq!(status, 200);
    let sam = app.login("sam").await;
    let (status, body) = read(&app, &sam, active).await;
    assert_eq!(status, 403, "an agent reads no transcript: {body}");
    for id in [active, pending] {
        let (_, g) = app
            .get(&format!("/api/grants/{id}"), Some(&april.token))
            .await;
        assert_eq!(g["status"], "revoked", "{g}");
        assert_eq!(g["ended_by"], admin.id, "{g}");
    }
    // Promoted back, the old grants stay ended.
    app.patch(
        &format!("/api/users/{}", sam.id),
        Some(&admin.token),
        json!({"role": "supervisor"}),
    )
    .await;
    let sam = app.login("sam").await;
    assert_eq!(read(&app, &sam, active).await.0, 409);

    // Deactivation ends another supervisor's grant the same way.
    assert_eq!(read(&app, &sue, sues).await.0, 200);
    app.patch(
        &format!("/api/users/{}", sue.id),
        Some(&admin.token),
        json!({"active": false}),
    )
    .await;
    let (_, g) = app
        .get(&format!("/api/grants/{sues}"), Some(&april.token))
        .await;
    assert_eq!(g["status"], "revoked", "{g}");

    let revoked = app.audit("action=grant_revoked").await;
    let why: Vec<(i64, &str)> = revoked
        .iter()
        .map(|e| {
            (
                e["object_id"].as_i64().unwrap(),
                e["detail"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(why.len(), 3, "{why:?}");
    assert!(
        why[0].0 == sues && why[0].1.contains("requester deactivated"),
        "{why:?}"
    );
    assert!(
        why[1..]
            .iter()
            .all(|(_, d)| d.contains("role changed (supervisor -> agent)")),
        "{why:?}"
    );
    let refused = app
        .audit(&format!(
            "action=grant_used&actor={}&outcome=denied",
            sam.id
        ))
        .await;
    assert!(
        refused[1]["detail"]
            .as_str()
            .unwrap()
            .contains("may not read through a grant"),
        "{refused:?}"
    );
}
