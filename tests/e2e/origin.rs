//! Which pages may talk to the gateway: the staff socket only from the gateway's own pages, a
//! site's widget only from the gateway's pages and the origins the site lists; programs that
//! send no `Origin` at all (they prove themselves with their token) are not affected.

use deskgate::config::SiteConfig;
use deskgate_tests::{Closed, TestApp};
use reqwest::Method;
use serde_json::json;

const SHOP: &str = "https://shop.example";
const EVIL: &str = "https://evil.example";

fn site(key: &str, origins: &[&str]) -> SiteConfig {
    SiteConfig {
        key: key.into(),
        name: None,
        identity_secret: None,
        identity_secret_file: None,
        allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
        prechat: false,
        language: None,
        twilio_auth_token: None,
        twilio_auth_token_file: None,
    }
}

/// Two sites: `shop` embeds the widget on shop.example, `other` lists nothing.
async fn two_sites() -> TestApp {
    TestApp::builder()
        .config(|c| c.sites = vec![site("shop", &[SHOP]), site("other", &[])])
        .start()
        .await
}

#[tokio::test]
async fn a_staff_socket_opens_only_from_the_gateways_own_pages() {
    let app = TestApp::start().await;
    let agent = app.agent("grace").await;

    let refused = app.connect_from(EVIL, "/ws/agent").await;
    let err = refused
        .err()
        .expect("a foreign page is refused before the upgrade");
    assert!(err.to_string().contains("403"), "{err}");
    let null = app.connect_from("null", "/ws/agent").await;
    assert!(null.is_err(), "an opaque origin is refused too");

    let mut ws = app
        .connect_from(&app.own_origin(), "/ws/agent")
        .await
        .unwrap();
    ws.send(json!({"type": "hello", "token": agent.token}))
        .await;
    ws.recv_type("welcome").await;
}

#[tokio::test]
async fn a_customer_socket_from_a_page_the_site_does_not_list_is_closed_at_hello() {
    let app = two_sites().await;
    let (status, body) = app
        .post("/api/visitor", None, json!({"site_key": "shop"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["visitor_token"].as_str().unwrap().to_string();

    for origin in [SHOP.to_string(), app.own_origin()] {
        let mut ws = app.connect_from(&origin, "/ws/customer").await.unwrap();
        ws.send(json!({"type": "hello", "token": token})).await;
        ws.recv_type("welcome").await;
        ws.close().await;
    }

    let mut ws = app.connect_from(EVIL, "/ws/customer").await.unwrap();
    ws.send(json!({"type": "hello", "token": token})).await;
    assert_eq!(ws.closed().await, Closed::Code(4004));
    assert!(
        ws.take_pending().iter().all(|f| f["type"] != "welcome"),
        "nothing is served before the refusal"
    );
}

#[tokio::test]
async fn one_sites_origins_do_not_open_another_sites_widget() {
    let app = two_sites().await;
    let (status, body) = app
        .post("/api/visitor", None, json!({"site_key": "other"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["visitor_token"].as_str().unwrap().to_string();
    let mut ws = app.connect_from(SHOP, "/ws/customer").await.unwrap();
    ws.send(json!({"type": "hello", "token": token})).await;
    assert_eq!(ws.closed().await, Closed::Code(4004));

    let resp = app
        .request_from(
            SHOP,
            Method::POST,
            "/api/visitor",
            Some(json!({"site_key": "other"})),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 403);
}

#[tokio::test]
async fn visitor_sessions_follow_the_sites_allowed_origins_with_cors() {
    let app = two_sites().await;

    let resp = app
        .request_from(
            SHOP,
            Method::POST,
            "/api/visitor",
            Some(json!({"site_key": "shop"})),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    let allow = resp.headers().get("access-control-allow-origin").unwrap();
    assert_eq!(allow, SHOP, "the page's own origin is echoed, never *");
    assert!(resp
        .headers()
        .get("access-control-allow-credentials")
        .is_none());

    let resp = app
        .request_from(
            EVIL,
            Method::POST,
            "/api/visitor",
            Some(json!({"site_key": "shop"})),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 403);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");

    // The browser's preflight: let through for a listed page, refused for any other.
    let ok = app
        .request_from(SHOP, Method::OPTIONS, "/api/visitor", None)
        .await;
    assert_eq!(ok.status().as_u16(), 204);
    assert_eq!(
        ok.headers().get("access-control-allow-methods").unwrap(),
        "POST"
    );
    let refused = app
        .request_from(EVIL, Method::OPTIONS, "/api/visitor", None)
        .await;
    assert_eq!(refused.status().as_u16(), 403);
}

#[tokio::test]
async fn programs_without_an_origin_are_unaffected() {
    let app = two_sites().await;
    let (status, body) = app
        .post("/api/visitor", None, json!({"site_key": "other"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["visitor_token"].as_str().unwrap();
    let (_ws, welcome) = app.hello("/ws/customer", token, json!([])).await;
    assert!(welcome["customer"]["id"].is_i64());
}

#[tokio::test]
async fn an_allowed_origin_that_is_not_an_origin_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("deskgate.toml");
    std::fs::write(
        &config,
        "[[sites]]\nkey = \"shop\"\nallowed_origins = [\"https://shop.example/checkout\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::config::deskgate_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("allowed_origins") && stderr.contains("no path"),
        "{stderr}"
    );
}

#[tokio::test]
async fn presence_answers_the_sites_own_pages_with_cors() {
    let app = two_sites().await;
    let resp = app
        .request_from(SHOP, Method::GET, "/api/sites/shop/presence", None)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("access-control-allow-origin").unwrap(),
        SHOP
    );
    assert_eq!(resp.headers().get("vary").unwrap(), "origin");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"agents_online": false}));
    // Another site's page, a page nobody lists, and `null` are refused.
    for (origin, site) in [(SHOP, "other"), (EVIL, "shop"), ("null", "shop")] {
        let resp = app
            .request_from(
                origin,
                Method::GET,
                &format!("/api/sites/{site}/presence"),
                None,
            )
            .await;
        assert_eq!(resp.status(), 403, "{origin} for {site}");
        assert!(resp.headers().get("access-control-allow-origin").is_none());
    }
    // The gateway's own pages and programs without an Origin still get it.
    let own = app.own_origin();
    let resp = app
        .request_from(&own, Method::GET, "/api/sites/shop/presence", None)
        .await;
    assert_eq!(resp.status(), 200);
    let (status, _) = app.get("/api/sites/shop/presence", None).await;
    assert_eq!(status, 200);
    let (status, _) = app.get("/api/sites/nope/presence", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_widget_learns_its_sites_pre_chat_setting() {
    let mut asks = site("shop", &[SHOP]);
    asks.prechat = true;
    let app = TestApp::builder()
        .config(|c| c.sites = vec![asks, site("other", &[])])
        .start()
        .await;
    let resp = app
        .request_from(SHOP, Method::GET, "/api/sites/shop/widget", None)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("access-control-allow-origin").unwrap(),
        SHOP
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"name": "shop", "prechat": true}));
    let (status, body) = app.get("/api/sites/other/widget", None).await;
    assert_eq!(
        (status, body),
        (200, json!({"name": "other", "prechat": false}))
    );
    let resp = app
        .request_from(EVIL, Method::GET, "/api/sites/shop/widget", None)
        .await;
    assert_eq!(resp.status(), 403);
    let (status, _) = app.get("/api/sites/nope/widget", None).await;
    assert_eq!(status, 404);
}
