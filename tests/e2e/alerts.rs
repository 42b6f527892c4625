//! Anomaly alerts, end to end: each rule crossed through the real gateway raises an alert that
//! supervisors see live, that the audit log keeps (`GET /api/alerts` reads it back), and that a
//! real local HTTP receiver gets, signed with HMAC-SHA256 over the timestamp and the body.

use deskgate::anomaly::{AlertsConfig, Webhook};
use deskgate_tests::smtp::{code_in, SmtpServer};
use deskgate_tests::{TestApp, TestAppBuilder, WsClient, WAIT};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;
use tokio::sync::mpsc;

const SECRET: &str = "webhook-secret-for-tests-0123456789";

/// One request the receiver got: its headers of interest and its body.
#[derive(Debug)]
struct Delivery {
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

/// A real HTTP server on 127.0.0.1:0 that records every POST /hook.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Delivery>) {
    use axum::http::HeaderMap;
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let _ = tx.send(Delivery {
                    timestamp: h("x-deskgate-timestamp"),
                    signature: h("x-deskgate-signature"),
                    body: body.to_vec(),
                });
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// What a receiver does: recompute the signature and check the timestamp is recent.
fn verify(d: &Delivery, now_secs: i64) -> Value {
    let ts: i64 = d.timestamp.parse().expect("timestamp header");
    assert!((now_secs - ts).abs() <= 300, "outside the replay window");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&d.body);
    let want = format!("sha256={}", hex_encode(&mac.finalize().into_bytes()));
    assert_eq!(d.signature, want, "signature");
    serde_json::from_slice(&d.body).unwrap()
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn next_delivery(rx: &mut mpsc::UnboundedReceiver<Delivery>) -> Delivery {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a webhook delivery in time")
        .expect("receiver open")
}

fn alerts(
    thresholds: impl FnOnce(&mut AlertsConfig),
    url: Option<String>,
) -> impl FnOnce(&mut deskgate::Config) {
    move |c| {
        let mut a = AlertsConfig {
            pii_customers: 0,
            failed_verifications: 0,
            risky_requests: 0,
            blocked_cards: 0,
            ..Default::default()
        };
        thresholds(&mut a);
        a.webhook = url.map(|url| Webhook {
            url,
            secret: SECRET.to_string().into(),
        });
        c.alerts = a;
    }
}

/// A supervisor connected to the staff socket, who receives `security_alert` frames.
async fn supervisor(app: &TestApp) -> WsClient {
    let s = app.staff("sam", "supervisor", 5).await;
    let (ws, _) = app.agent_ws(&s).await;
    ws
}

async fn anomaly_entries(app: &TestApp) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let e = app.audit("action=anomaly_alert").await;
        if !e.is_empty() || tokio::time::Instant::now() > deadline {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn card_numbers_blocked_from_one_visitor_alert_everywhere_with_a_signed_webhook() {
    let (url, mut hook) = receiver().await;
    let app = TestApp::builder()
        .config(alerts(|a| a.blocked_cards = 2, Some(url)))
        .start()
        .await;
    let mut sup = supervisor(&app).await;
    let v = app.visitor().await;
    let (mut ws, _) = app.customer_ws(&v).await;
    for (i, card) in ["4111 1111 1111 1111", "5500 0000 0000 0004"]
        .iter()
        .enumerate()
    {
        ws.send(json!({"type": "send", "client_id": format!("c{i}"), "text": format!("my card {card}")}))
            .await;
        ws.recv_type("blocked").await;
    }
    let alert = sup.recv_type("security_alert").await;
    assert_eq!(alert["kind"], "card_numbers_blocked", "{alert}");
    assert_eq!(alert["level"], "warning");
    assert_eq!(alert["customer"], v.customer_id);
    let entries = anomaly_entries(&app).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["customer"], v.customer_id);
    let d = next_delivery(&mut hook).await;
    let body = verify(
        &d,
        deskgate::clock::Clock::now(&deskgate::clock::SystemClock).0 / 1000,
    );
    assert_eq!(body["kind"], "card_numbers_blocked");
    assert_eq!(body["level"], "warning");
    assert_eq!(body["audit_seq"], entries[0]["seq"]);
    // Read back for a supervisor who was away.
    let admin = app.admin().await;
    let (status, listed) = app.get("/api/alerts", Some(&admin.token)).await;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["kind"], "card_numbers_blocked", "{listed}");
    assert_eq!(listed[0]["level"], "warning");
    // A third card in the same window does not alert again.
    ws.send(json!({"type": "send", "client_id": "c3", "text": "4012 8888 8888 1881"}))
        .await;
    ws.recv_type("blocked").await;
    sup.expect_none("security_alert", Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn a_staff_member_reading_many_customers_warns_then_goes_critical() {
    let (url, mut hook) = receiver().await;
    let app = TestApp::builder()
        .config(alerts(|a| a.pii_customers = 2, Some(url)))
        .start()
        .await;
    let mut sup = supervisor(&app).await;
    let admin = app.admin().await;
    let mut customers = Vec::new();
    for _ in 0..4 {
        customers.push(app.visitor().await.customer_id);
    }
    for id in &customers {
        let (status, _) = app
            .get(&format!("/api/customers/{id}"), Some(&admin.token))
            .await;
        assert_eq!(status, 200);
    }
    let warning = sup.recv_type("security_alert").await;
    assert_eq!(
        (warning["kind"].as_str(), warning["level"].as_str()),
        (Some("pii_access_burst"), Some("warning")),
        "{warning}"
    );
    assert_eq!(warning["actor"], admin.id);
    let critical = sup.recv_type("security_alert").await;
    assert_eq!(critical["level"], "critical", "{critical}");
    let levels: Vec<String> = [
        next_delivery(&mut hook).await,
        next_delivery(&mut hook).await,
    ]
    .iter()
    .map(|d| {
        verify(d, d.timestamp.parse().unwrap())["level"]
            .as_str()
            .unwrap()
            .to_string()
    })
    .collect();
    assert_eq!(levels, ["warning", "critical"]);
}

#[tokio::test]
async fn reading_customer_data_outside_working_hours_is_an_info_alert() {
    use deskgate::clock::Clock;
    let hour = (deskgate::clock::SystemClock.now().0 / 3_600_000 % 24) as u32;
    // A two-hour window that starts two hours from now: the test runs outside it.
    let hours = ((hour + 2) % 24, (hour + 4) % 24);
    let app = TestApp::builder()
        .config(alerts(move |a| a.working_hours = Some(hours), None))
        .start()
        .await;
    let mut sup = supervisor(&app).await;
    let admin = app.admin().await;
    let v = app.visitor().await;
    app.get(
        &format!("/api/customers/{}", v.customer_id),
        Some(&admin.token),
    )
    .await;
    let alert = sup.recv_type("security_alert").await;
    assert_eq!(
        (alert["kind"].as_str(), alert["level"].as_str()),
        (Some("pii_access_off_hours"), Some("info")),
        "{alert}"
    );
}

#[tokio::test]
async fn a_burst_of_the_same_risky_request_across_tickets_alerts() {
    let app = TestApp::builder()
        .config(alerts(|a| a.risky_requests = 3, None))
        .start()
        .await;
    let mut sup = supervisor(&app).await;
    for _ in 0..3 {
        app.customer_with_ticket("Hi, I need to reset my password please")
            .await;
    }
    let alert = sup.recv_type("security_alert").await;
    assert_eq!(alert["kind"], "risky_request_burst", "{alert}");
    assert!(
        alert["message"]
            .as_str()
            .unwrap()
            .contains("reset_password"),
        "{alert}"
    );
}

fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

#[tokio::test]
async fn repeated_failed_verifications_against_one_customer_alert() {
    let smtp = SmtpServer::start().await;
    let builder: TestAppBuilder = TestApp::builder()
        .smtp(&smtp)
        .config(alerts(|a| a.failed_verifications = 3, None));
    let app = builder.start().await;
    let mut sup = supervisor(&app).await;
    let agent = app.agent("grace").await;
    let (mut agent_ws, _) = app.agent_ws(&agent).await;
    let visitor = app.verified_visitor("cust-1", "ada@example.com").await;
    let (mut customer, _) = app.customer_ws(&visitor).await;
    let ack = customer.send_text(None, "m1", "Hello there").await;
    let ticket = ack["ticket"].as_i64().unwrap();
    let ok = agent_ws
        .request(json!({"type": "claim", "ticket": ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    let reply = agent_ws
        .request(
            json!({"type": "request_verification", "ticket": ticket, "action": "reset_password"}),
        )
        .await;
    assert_eq!(reply["type"], "ok", "{reply}");
    let asked = customer.recv_type("verification_requested").await;
    let code = code_in(&smtp.wait_for(1).await[0]);
    for _ in 0..3 {
        let r = customer
            .request(
                json!({"type": "verify", "challenge": asked["challenge"], "code": wrong(&code)}),
            )
            .await;
        assert_eq!(r["state"], "pending", "{r}");
    }
    let alert = sup.recv_type("security_alert").await;
    assert_eq!(alert["kind"], "failed_verifications", "{alert}");
    assert_eq!(alert["customer"], visitor.customer_id);
}

#[test]
fn bad_alert_settings_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let load = |toml: &str| {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        deskgate::Config::load(&deskgate::config::ServeArgs {
            config: Some(path),
            ..Default::default()
        })
        .map_err(|e| e.to_string())
    };
    let err = load("[alerts]\nwebhook_url = \"http://127.0.0.1:1/h\"\n").unwrap_err();
    assert!(
        err.contains("webhook_url together with its secret"),
        "{err}"
    );
    let err = load("[alerts]\nworking_hours = \"9-5\"\n").unwrap_err();
    assert!(err.contains("07:00-19:00"), "{err}");
    let err = load("[alerts]\nwebhook_url = \"ftp://x\"\nwebhook_secret = \"0123456789abcdefg\"\n")
        .unwrap_err();
    assert!(err.contains("http(s)"), "{err}");
    let ok =
        load("[alerts]\nwindow = \"5m\"\nblocked_cards = 4\nworking_hours = \"22:00-06:00\"\n")
            .unwrap();
    assert_eq!(ok.alerts.blocked_cards, 4);
    assert_eq!(ok.alerts.working_hours, Some((22, 6)));
}
