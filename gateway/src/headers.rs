//! Security headers on every response: HSTS when the gateway serves TLS itself; no MIME
//! sniffing, no referrer, and no caching of API answers (they carry customer data); pages
//! get their Content-Security-Policy, framing, permissions and opener policies in [`crate::web`].

use crate::app::App;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// One year; browsers then refuse plain HTTP to this host.
pub const HSTS: &str = "max-age=31536000";

/// Browser features the pages never use, switched off for them and anything they load; the
/// microphone is the page's own (calls from the widget and the agent console), never a frame's.
pub const PERMISSIONS_POLICY: &str = "camera=(), microphone=(self), geolocation=(), \
    payment=(), usb=(), serial=(), bluetooth=(), midi=(), magnetometer=(), gyroscope=(), \
    accelerometer=()";

pub async fn security_headers(State(app): State<App>, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if app.config.tls.is_some() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    if api {
        h.entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        // A JSON answer opened as a document runs nothing and cannot be framed.
        h.entry(header::CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static(
                "default-src 'none'; frame-ancestors 'none'",
            ));
    }
    resp
}
