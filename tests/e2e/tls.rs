//! TLS built in: a WebSocket client over rustls trusting a CA made for the test, HSTS, ALPN,
//! certificate reload on file change and on SIGHUP, and old protocol versions refused.

use deskgate_tests::tls::{handshake, https, TestCa};
use deskgate_tests::{TestApp, WsClient, WAIT};
use serde_json::{json, Value};
use std::time::Duration;

async fn tls_app(ca: &TestCa, watch: Duration) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cert = ca.server_cert(dir.path(), "server", "first");
    let app = TestApp::builder()
        .tls(cert.cert_file, cert.key_file, watch)
        .start()
        .await;
    (app, dir)
}

#[tokio::test]
async fn a_websocket_over_tls_trusting_the_test_ca_chats() {
    let ca = TestCa::new();
    let (app, _dir) = tls_app(&ca, Duration::from_secs(3600)).await;
    let config = ca.client_config(&[b"http/1.1"]);
    let (status, head, body) = https(
        app.addr,
        config.clone(),
        "POST",
        "/api/visitor",
        Some(&json!({"site_key": "demo", "name": "Ada"})),
    )
    .await;
    assert_eq!(status, 201, "{head}\n{body}");
    assert!(
        head.contains("strict-transport-security: max-age=31536000"),
        "{head}"
    );
    let visitor: Value = serde_json::from_str(&body).unwrap();
    let token = visitor["visitor_token"].as_str().unwrap();

    let url = format!("wss://localhost:{}/ws/customer", app.addr.port());
    let mut ws = WsClient::connect_tls(&url, config).await.unwrap();
    ws.send(json!({"type": "hello", "token": token})).await;
    ws.recv_type("welcome").await;
    let ack = ws.send_text(None, "c1", "hello over TLS").await;
    assert_eq!(ack["seq"], 1, "{ack}");

    // Plain HTTP on the TLS port gets no answer from the application.
    let plain = reqwest::get(app.url("/healthz")).await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP must not be served on the TLS listener"
    );
}

#[tokio::test]
async fn alpn_offers_h2_and_http1_and_only_tls12_or_newer_is_negotiated() {
    let ca = TestCa::new();
    let (app, _dir) = tls_app(&ca, Duration::from_secs(3600)).await;
    let (_, h2) = handshake(app.addr, ca.client_config(&[b"h2", b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(h2.alpn.as_deref(), Some(&b"h2"[..]));
    let (_, h1) = handshake(app.addr, ca.client_config(&[b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(h1.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(
        h1.version,
        Some(tokio_rustls::rustls::ProtocolVersion::TLSv1_3)
    );

    // A client that speaks only TLS 1.2 gets TLS 1.2 with an AEAD suite.
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let tls12 = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&tokio_rustls::rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(ca_roots(&ca))
        .with_no_client_auth();
    let (stream, n) = handshake(app.addr, std::sync::Arc::new(tls12))
        .await
        .unwrap();
    assert_eq!(
        n.version,
        Some(tokio_rustls::rustls::ProtocolVersion::TLSv1_2)
    );
    let suite = stream.get_ref().1.negotiated_cipher_suite().unwrap();
    let name = format!("{:?}", suite.suite());
    assert!(
        name.starts_with("TLS_ECDHE_") && (name.contains("GCM") || name.contains("CHACHA20")),
        "{name}"
    );
}

fn ca_roots(ca: &TestCa) -> tokio_rustls::rustls::RootCertStore {
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(ca.root_der().into()).unwrap();
    roots
}

/// Writes a new pair over the served files (atomically, as cert managers do).
fn swap_in(
    ca: &TestCa,
    dir: &std::path::Path,
    served: &std::path::Path,
    key: &std::path::Path,
) -> Vec<u8> {
    let next = ca.server_cert(dir, "next", "second");
    std::fs::rename(&next.key_file, key).unwrap();
    std::fs::rename(&next.cert_file, served).unwrap();
    next.der
}

async fn served_cert(app: &TestApp, ca: &TestCa) -> Vec<u8> {
    handshake(app.addr, ca.client_config(&[]))
        .await
        .expect("handshake")
        .1
        .cert
}

async fn wait_for_cert(app: &TestApp, ca: &TestCa, want: &[u8]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if served_cert(app, ca).await == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_renewed_certificate_is_served_after_the_files_change() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let first = ca.server_cert(dir.path(), "server", "first");
    let app = TestApp::builder()
        .tls(
            first.cert_file.clone(),
            first.key_file.clone(),
            Duration::from_millis(100),
        )
        .start()
        .await;
    assert_eq!(served_cert(&app, &ca).await, first.der);
    // A broken file is not taken: the old certificate stays.
    std::fs::write(&first.cert_file, "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(served_cert(&app, &ca).await, first.der);
    let second = swap_in(&ca, dir.path(), &first.cert_file, &first.key_file);
    wait_for_cert(&app, &ca, &second).await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let first = ca.server_cert(dir.path(), "server", "first");
    // The files are not watched in this test's lifetime: only the signal reloads.
    let app = TestApp::builder()
        .tls(
            first.cert_file.clone(),
            first.key_file.clone(),
            Duration::from_secs(3600),
        )
        .start()
        .await;
    assert_eq!(served_cert(&app, &ca).await, first.der);
    let second = swap_in(&ca, dir.path(), &first.cert_file, &first.key_file);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for_cert(&app, &ca, &second).await;
}

/// `openssl s_client` with one protocol version; its exit status and output.
fn s_client(app: &TestApp, version: &str) -> (bool, String) {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &app.addr.to_string(),
            "-servername",
            "localhost",
            version,
            // OpenSSL 3 will not even offer TLS 1.0/1.1 at its default security level.
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl on PATH");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn openssl_with_tls_1_0_or_1_1_is_refused() {
    let ca = TestCa::new();
    let (app, _dir) = tls_app(&ca, Duration::from_secs(3600)).await;
    let app2 = std::sync::Arc::new(app);
    let a = app2.clone();
    let (ok12, text12) = tokio::task::spawn_blocking(move || s_client(&a, "-tls1_2"))
        .await
        .unwrap();
    assert!(
        ok12 && text12.contains("TLSv1.2"),
        "TLS 1.2 must work:\n{text12}"
    );
    for version in ["-tls1", "-tls1_1"] {
        let a = app2.clone();
        let (ok, text) = tokio::task::spawn_blocking(move || s_client(&a, version))
            .await
            .unwrap();
        if text.contains("no protocols available") {
            eprintln!("SKIPPED {version}: this openssl cannot offer it at all:\n{text}");
            continue;
        }
        assert!(!ok, "{version} was accepted:\n{text}");
        assert!(
            !text.contains("Cipher is ") || text.contains("Cipher is (NONE)"),
            "{version} negotiated a cipher:\n{text}"
        );
    }
}
