//! Which web pages may talk to the gateway. Browsers put `Origin` on every WebSocket upgrade and
//! every cross-origin `POST`, and a page cannot forge it; so a page on another site cannot open a
//! staff socket with a victim's browser (cross-site WebSocket hijacking), nor start visitor
//! sessions for a site that did not list it.
//!
//! Rules, the same for every request that carries a token or creates one:
//! - no `Origin` header: not a page but a program (curl, a server, the load generator), which
//!   proves itself with its own token; allowed;
//! - the gateway's own origin (the `Host` the request was sent to, or `public_url`): the widget on
//!   `/demo` and the consoles; allowed;
//! - for customers, an origin the site lists in `allowed_origins`; allowed;
//! - anything else, including `null` (sandboxed frames, `file:` pages): refused.

use axum::http::header::{HOST, ORIGIN};
use axum::http::HeaderMap;

use crate::config::Config;
use crate::sites::Site;

/// A parsed `scheme://host[:port]`, lower-cased, with the scheme's default port made explicit so
/// `https://a.example` and `https://a.example:443` compare equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses an origin as browsers send it and as operators write it in `allowed_origins`:
    /// `http` or `https`, a host, an optional port, nothing after.
    pub fn parse(text: &str) -> Result<Origin, String> {
        let text = text.trim().to_ascii_lowercase();
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?} is not an origin (scheme://host[:port])"))?;
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return Err(format!("{text:?}: the scheme must be http or https")),
        };
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "{text:?} is not an origin: no path, query or credentials"
            ));
        }
        let (host, port) =
            split_authority(rest).ok_or_else(|| format!("{text:?}: the port must be a number"))?;
        if host.is_empty() {
            return Err(format!("{text:?}: the host is missing"));
        }
        Ok(Origin {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port: port.unwrap_or(default_port),
        })
    }

    /// Whether this origin names the server a request reached through `host` (the `Host`
    /// header). The scheme is not compared: behind a TLS-terminating proxy the gateway sees
    /// plain HTTP for an `https://` page.
    fn is_host(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        match split_authority(&host) {
            Some((name, Some(port))) => name == self.host && port == self.port,
            Some((name, None)) => name == self.host && (self.port == 80 || self.port == 443),
            None => false,
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// `host[:port]`, with IPv6 literals in brackets; `None` if the port is not a number.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &authority[..end + 2];
        match &rest[end + 1..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    match port {
        Some(p) => Some((host, Some(p.parse().ok()?))),
        None => Some((host, None)),
    }
}

/// Where a request came from, taken from its headers at the edge.
#[derive(Clone, Debug, Default)]
pub struct RequestOrigin {
    /// The `Origin` header as sent; `None` when absent.
    origin: Option<String>,
    host: Option<String>,
}

/// Why an origin was refused; the text is for the log, the client only learns "forbidden".
#[derive(Debug, thiserror::Error)]
#[error("origin {origin:?} may not {what}")]
pub struct OriginRefused {
    pub origin: String,
    pub what: &'static str,
}

impl RequestOrigin {
    pub fn from_headers(headers: &HeaderMap) -> RequestOrigin {
        let text = |name| {
            headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        RequestOrigin {
            origin: text(ORIGIN),
            host: text(HOST),
        }
    }

    /// Staff sockets and the consoles' API calls: only the gateway's own pages.
    pub fn check_staff(&self, config: &Config) -> Result<(), OriginRefused> {
        match self.parsed("open a staff session")? {
            None => Ok(()),
            Some(origin) if self.is_own(&origin, config) => Ok(()),
            Some(_) => Err(self.refused("open a staff session")),
        }
    }

    /// Customer sockets and visitor sessions of `site`: the gateway's own pages and the
    /// origins the site lists.
    pub fn check_site(&self, config: &Config, site: &Site) -> Result<(), OriginRefused> {
        match self.parsed("embed this site's widget")? {
            None => Ok(()),
            Some(origin) if self.is_own(&origin, config) => Ok(()),
            Some(origin) if site.allowed_origins.contains(&origin) => Ok(()),
            Some(_) => Err(self.refused("embed this site's widget")),
        }
    }

    /// `None` without an `Origin` header; an unparsable one (`null` included) is refused.
    fn parsed(&self, what: &'static str) -> Result<Option<Origin>, OriginRefused> {
        match &self.origin {
            None => Ok(None),
            Some(text) => Origin::parse(text)
                .map(Some)
                .map_err(|_| self.refused(what)),
        }
    }

    fn is_own(&self, origin: &Origin, config: &Config) -> bool {
        let public = config
            .public_url
            .as_deref()
            .and_then(|url| Origin::parse(url.trim_end_matches('/')).ok());
        match public {
            // With a public URL, that is the one origin of the gateway's pages.
            Some(public) => &public == origin,
            None => self.host.as_deref().is_some_and(|h| origin.is_host(h)),
        }
    }

    fn refused(&self, what: &'static str) -> OriginRefused {
        OriginRefused {
            origin: self.origin.clone().unwrap_or_default(),
            what,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_and_normalise() {
        let a = Origin::parse("HTTPS://Shop.Example").unwrap();
        assert_eq!(a, Origin::parse("https://shop.example:443").unwrap());
        assert_eq!(a.to_string(), "https://shop.example:443");
        assert_eq!(
            Origin::parse("http://[::1]:8080").unwrap().host,
            "[::1]".to_string()
        );
        for bad in [
            "null",
            "shop.example",
            "ftp://shop.example",
            "https://shop.example/path",
            "https://user@shop.example",
            "https://shop.example:http",
            "https://",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_origin_matches_the_host_it_was_sent_to() {
        let o = Origin::parse("http://127.0.0.1:8080").unwrap();
        assert!(o.is_host("127.0.0.1:8080"));
        assert!(!o.is_host("127.0.0.1:8081"));
        assert!(!o.is_host("localhost:8080"));
        let https = Origin::parse("https://desk.example").unwrap();
        assert!(https.is_host("desk.example"));
        assert!(https.is_host("Desk.Example:443"));
        assert!(!https.is_host("evil.example"));
        let v6 = Origin::parse("http://[::1]:9000").unwrap();
        assert!(v6.is_host("[::1]:9000"));
    }
}
