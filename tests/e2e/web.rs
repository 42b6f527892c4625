//! The embedded web faces as HTTP serves them: types, ETags, caching and security headers.

use deskgate_tests::TestApp;

async fn get(app: &TestApp, path: &str, etag: Option<&str>) -> reqwest::Response {
    let mut req = app.http.get(app.url(path));
    if let Some(tag) = etag {
        req = req.header("if-none-match", tag);
    }
    req.send().await.expect("GET")
}

#[tokio::test]
async fn pages_carry_a_strict_content_security_policy() {
    let app = TestApp::start().await;
    for path in ["/demo", "/console", "/supervisor"] {
        let r = get(&app, path, None).await;
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert_eq!(h["content-type"], "text/html; charset=utf-8", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("connect-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-eval"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        let body = r.text().await.unwrap();
        assert!(!body.contains("<script>"), "{path} has an inline script");
    }
}

#[tokio::test]
async fn the_widget_is_javascript_with_an_etag_and_revalidates() {
    let app = TestApp::start().await;
    let r = get(&app, "/widget.js", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let tag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(tag.starts_with('"') && tag.len() > 10, "{tag}");
    assert!(r.text().await.unwrap().contains("DeskgateWidget"));

    let again = get(&app, "/widget.js", Some(&tag)).await;
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), tag);
    let stale = get(&app, "/widget.js", Some("\"other\"")).await;
    assert_eq!(stale.status(), 200);
}

#[tokio::test]
async fn assets_are_served_by_name_and_nothing_else_is() {
    let app = TestApp::start().await;
    let css = get(&app, "/assets/console.css", None).await;
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let js = get(&app, "/assets/console.js", None).await;
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    for path in [
        "/assets/nope.js",
        "/assets/..%2Fdemo.html",
        "/assets/%2e%2e%2fCargo.toml",
    ] {
        assert_eq!(get(&app, path, None).await.status(), 404, "{path}");
    }
    let index = get(&app, "/", None).await.text().await.unwrap();
    assert!(index.contains("/console") && index.contains("/demo"));
}

#[tokio::test]
async fn presence_tells_the_widget_whether_an_agent_is_online() {
    let app = TestApp::start().await;
    let (status, body) = app.get("/api/sites/demo/presence", None).await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"agents_online": false}));

    let grace = app.agent("grace").await;
    let (ws, _) = app.agent_ws(&grace).await;
    let (_, body) = app.get("/api/sites/demo/presence", None).await;
    assert_eq!(body["agents_online"], true);

    // An approver's console does not make the desk staffed: approvers do not work tickets.
    ws.close().await;
    let ada = app.staff("ada", "approver", 1).await;
    let (_approver, _) = app.agent_ws(&ada).await;
    let mut online = true;
    for _ in 0..100 {
        let (_, body) = app.get("/api/sites/demo/presence", None).await;
        online = body["agents_online"] == true;
        if !online {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!online, "still online after the agent's console closed");

    let (status, _) = app.get("/api/sites/nope/presence", None).await;
    assert_eq!(status, 404);
}
