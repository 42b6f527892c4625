//! Customers vouched for by the embedding site: a signed identity token makes a customer
//! "verified" and ties their visits together; anything unsigned stays unverified and apart.

use deskgate::clock::Clock;
use deskgate_tests::TestApp;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn demo_secret(app: &TestApp) -> String {
    let path = app.data_dir().join("sites/demo.identity-secret");
    std::fs::read_to_string(path)
        .expect("the demo site's secret")
        .trim()
        .to_string()
}

fn sign(secret: &str, claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Claims for the site's customer `sub`, valid for ten minutes of the gateway's clock.
fn claims(app: &TestApp, sub: &str) -> Value {
    let exp = app.clock.now().millis() / 1000 + 600;
    json!({"sub": sub, "name": "Ada Lovelace", "email": "ada@example.com", "exp": exp})
}

#[tokio::test]
async fn a_signed_identity_is_verified_and_keeps_its_history() {
    let app = TestApp::start().await;
    let token = sign(&demo_secret(&app), claims(&app, "cust-42"));
    let (status, first) = app
        .post(
            "/api/visitor",
            None,
            json!({"site_key": "demo", "identity_token": token}),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["customer"]["verified"], true);
    assert_eq!(first["customer"]["name"], "Ada Lovelace");
    let customer = first["customer"]["id"].as_i64().unwrap();

    let visitor = app
        .visitor_with(json!({"site_key": "demo", "identity_token": token}))
        .await;
    let (mut ws, welcome) = app.customer_ws(&visitor).await;
    assert_eq!(welcome["customer"]["verified"], true);
    let ack = ws.send_text(None, "c-1", "Hello from my laptop").await;

    // Later, on another device, with a fresh token for the same person.
    let token = sign(&demo_secret(&app), claims(&app, "cust-42"));
    let later = app
        .visitor_with(json!({"site_key": "demo", "identity_token": token}))
        .await;
    assert_eq!(
        later.customer_id, customer,
        "the same sub is the same customer"
    );
    let (_, welcome) = app.customer_ws(&later).await;
    assert_eq!(welcome["conversation"]["ticket"], ack["ticket"]);
    assert_eq!(welcome["conversation"]["last_seq"], 1);

    let admin = app.admin().await;
    let (_, history) = app
        .get(
            &format!("/api/customers/{customer}/tickets"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(history[0]["id"], ack["ticket"]);
    assert_eq!(history[0]["customer"]["verified"], true);
}

#[tokio::test]
async fn a_bad_signature_or_expired_identity_is_refused() {
    let app = TestApp::start().await;
    let forged = sign("not the site's secret at all!", claims(&app, "cust-42"));
    let (status, body) = app
        .post(
            "/api/visitor",
            None,
            json!({"site_key": "demo", "identity_token": forged}),
        )
        .await;
    assert_eq!(status, 401, "{body}");

    let mut old = claims(&app, "cust-42");
    old["exp"] = json!(app.clock.now().millis() / 1000 - 3600);
    let expired = sign(&demo_secret(&app), old);
    let (status, _) = app
        .post(
            "/api/visitor",
            None,
            json!({"site_key": "demo", "identity_token": expired}),
        )
        .await;
    assert_eq!(status, 401);

    let (status, _) = app
        .post(
            "/api/visitor",
            None,
            json!({"site_key": "demo", "identity_token": "not.a.jwt"}),
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn unsigned_details_stay_unverified_and_never_merge() {
    let app = TestApp::start().await;
    let token = sign(&demo_secret(&app), claims(&app, "cust-42"));
    let verified = app
        .visitor_with(json!({"site_key": "demo", "identity_token": token}))
        .await;
    let (mut ws, _) = app.customer_ws(&verified).await;
    ws.send_text(None, "c-1", "private matter").await;

    // Someone types the same name and email without a signature.
    let body = json!({"site_key": "demo", "name": "Ada Lovelace", "email": "ada@example.com"});
    let (status, claimed) = app.post("/api/visitor", None, body.clone()).await;
    assert_eq!(status, 201);
    assert_eq!(claimed["customer"]["verified"], false);
    let impostor = claimed["customer"]["id"].as_i64().unwrap();
    assert_ne!(impostor, verified.customer_id);
    let again = app.visitor_with(body).await;
    assert_ne!(
        again.customer_id, impostor,
        "unsigned visitors are never merged"
    );

    let (_, welcome) = app.customer_ws(&again).await;
    assert_eq!(welcome["customer"]["verified"], false);
    assert_eq!(
        welcome["conversation"],
        json!(null),
        "no access to the verified customer's conversation"
    );
}
