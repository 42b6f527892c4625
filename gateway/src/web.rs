//! The web faces, built from `web-widget/` into `web-widget/dist/` and embedded in the binary,
//! so `deskgate serve` alone serves the widget (`/widget.js`), the demo host page (`/demo`),
//! the agent console (`/console`) and the supervisor console (`/supervisor`).
//!
//! Every file is answered with its content type, a strong ETag (a SHA-256 of its bytes, so a
//! browser revalidates with `If-None-Match` and gets 304), and, for pages, a Content-Security-
//! Policy that allows only the gateway's own scripts, styles and sockets.

use crate::api::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// No inline script or style, nothing from elsewhere; sockets and fetches to this origin only.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    /// The name under `dist/`.
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $ct:expr) => {
        Asset {
            name: $name,
            content_type: $ct,
            bytes: include_bytes!(concat!("../../web-widget/dist/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("widget.js", JS),
    asset!("console.js", JS),
    asset!("supervisor.js", JS),
    asset!("demo.js", JS),
    asset!("voice-worklet.js", JS),
    asset!("console.css", CSS),
    asset!("supervisor.css", CSS),
    asset!("demo.html", HTML),
    asset!("console.html", HTML),
    asset!("supervisor.html", HTML),
];

/// ETags, computed once on first use.
fn etag(i: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.bytes)[..12])))
            .collect()
    });
    tags.get(i).map(String::as_str).unwrap_or("\"\"")
}

/// The routes of the web faces, to be merged into the gateway's router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/demo",
            get(|h: HeaderMap| async move { serve("demo.html", &h) }),
        )
        .route(
            "/console",
            get(|h: HeaderMap| async move { serve("console.html", &h) }),
        )
        .route(
            "/supervisor",
            get(|h: HeaderMap| async move { serve("supervisor.html", &h) }),
        )
        .route(
            "/widget.js",
            get(|h: HeaderMap| async move { serve("widget.js", &h) }),
        )
        .route(
            "/assets/{name}",
            get(|Path(name): Path<String>, h: HeaderMap| async move { serve(&name, &h) }),
        )
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some((i, asset)) = ASSETS.iter().enumerate().find(|(_, a)| a.name == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let tag = etag(i);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, asset.bytes).into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    // Names are not content-hashed, so browsers revalidate every time (cheap with the ETag).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if asset.content_type == HTML {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        page_policies(h);
    } else if asset.name == "widget.js" {
        // Host pages on other origins load the widget with a plain <script> tag.
        h.insert(
            header::HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("cross-origin"),
        );
    } else if asset.name == "voice-worklet.js" {
        // The widget's call runs this audio worklet in the host page, which fetches it in CORS
        // mode (without credentials): it is the same public script for every page.
        h.insert(
            header::HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("cross-origin"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    resp
}

/// What every page gets besides its Content-Security-Policy.
pub fn page_policies(h: &mut HeaderMap) {
    h.insert(
        header::HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static(crate::headers::PERMISSIONS_POLICY),
    );
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_present_with_a_distinct_etag() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.bytes.is_empty(), "{} is empty", a.name);
            for j in 0..i {
                assert_ne!(etag(i), etag(j));
            }
        }
    }
}
