//! The lookup fast path: a value already written the way the index keys it — what a
//! normalizer's events mostly carry — is looked up as it is, borrowed, without a copy and
//! without the URL parser. Anything this module cannot decide by a scan of plain ASCII goes to
//! the full normalization ([`super::url::normalize_url`], [`super::domain::normalize_domain`]),
//! and the property test in `fuzz` holds the two to the same key for every value this path
//! takes.

use std::net::{IpAddr, Ipv4Addr};

/// The host of a canonical URL or a canonical domain, borrowed from the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'v> {
    Domain(&'v str),
    Ip(IpAddr),
}

/// Schemes the normalizer drops, lower case: a value starting with one is canonical from
/// after its `//` on.
const WEB_PREFIXES: [&str; 3] = ["http://", "https://", "ftp://"];

/// `value` (trimmed) as its URL key and host when it is one already, up to a web scheme in
/// lower case: plain ASCII with no escape, user info, port, fragment, backslash or colon
/// after the scheme; a canonical host; no dot-segment, no lone `/`, no empty query.
pub fn url(value: &str) -> Option<(&str, Host<'_>)> {
    let plain = value
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'%' | b'\\' | b'#' | b'@'));
    if !plain {
        return None;
    }
    let rest = (WEB_PREFIXES.iter())
        .find_map(|scheme| value.strip_prefix(scheme))
        .unwrap_or(value);
    // A colon is a scheme or a port to the normalizer (or data it must tell from them).
    if rest.contains(':') {
        return None;
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, text) = match host(authority)? {
        // The key begins with the host without its `www.` prefixes.
        Host::Domain(domain) => (
            Host::Domain(domain),
            &rest[authority.len() - domain.len()..],
        ),
        ip => (ip, rest),
    };
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    let dropped_or_added = match query {
        // An empty query is dropped; a query right after the host gets a `/` before it.
        Some(query) => query.is_empty() || path.is_empty(),
        // `example.com/` and `example.com` are one URL, keyed without the `/`.
        None => path == "/",
    };
    if dropped_or_added || path.split('/').any(|piece| piece == "." || piece == "..") {
        return None;
    }
    Some((text, host))
}

/// `value` (trimmed) when it is a domain as the index keys domains: see [`host`].
pub fn domain(value: &str) -> Option<&str> {
    match host(value)? {
        Host::Domain(domain) => Some(domain),
        Host::Ip(_) => None,
    }
}

/// `text` as the host it normalizes to, when that is a part of it: an IPv4 address in
/// dotted decimal without leading zeros, or a domain of lower-case ASCII letters, digits,
/// dots and hyphens whose last label is not a number (which makes an IPv4 address of it),
/// with no Punycode label to check and no leading or trailing dot, less its `www.` prefixes
/// (which the normalizer strips; what follows them must be a domain too).
fn host(text: &str) -> Option<Host<'_>> {
    if let Ok(ip) = text.parse::<Ipv4Addr>() {
        return Some(Host::Ip(IpAddr::V4(ip)));
    }
    let mut text = text;
    while let Some(rest) = text.strip_prefix("www.") {
        text = rest;
    }
    let plain = !text.is_empty()
        && (text.bytes())
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !plain || text.starts_with('.') || text.ends_with('.') {
        return None;
    }
    let last = text.rsplit('.').next()?;
    let numeric = last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x");
    let punycode = text.split('.').any(|label| label.starts_with("xn--"));
    (!numeric && !punycode).then_some(Host::Domain(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_urls_are_taken_as_they_are() {
        for (value, key, host) in [
            ("http://fakess123bn.nu", "fakess123bn.nu", "fakess123bn.nu"),
            (
                "https://a.example/x/y.js?q=1&r=?",
                "a.example/x/y.js?q=1&r=?",
                "a.example",
            ),
            ("a.example/", "", ""),
            (
                "h1.site2.com/p/3/index.html",
                "h1.site2.com/p/3/index.html",
                "h1.site2.com",
            ),
            ("a.example/?q", "a.example/?q", "a.example"),
            (
                "http://www.cdn.www.a.example/x",
                "cdn.www.a.example/x",
                "cdn.www.a.example",
            ),
            ("www.www.a.example", "a.example", "a.example"),
        ] {
            match url(value) {
                Some((text, Host::Domain(found))) => {
                    assert_eq!((text, found), (key, host), "{value}");
                }
                other => assert!(key.is_empty() && other.is_none(), "{value}: {other:?}"),
            }
        }
        assert_eq!(
            url("http://192.0.2.1/x"),
            Some(("192.0.2.1/x", Host::Ip("192.0.2.1".parse().unwrap())))
        );
    }

    #[test]
    fn what_the_normalizer_would_change_goes_to_it() {
        for value in [
            "HTTP://a.example/x",
            "http://A.example/x",
            "http://www.1.2.3.4/x",
            "http://www..a.example/x",
            "http://www.a.0x1/x",
            "http://www./x",
            "http://a.example:8080/x",
            "http://u@a.example/x",
            "http://a.example/x%20y",
            "http://a.example/x#top",
            "http://a.example/./x",
            "http://a.example/x/..",
            "http://a.example\\x",
            "a.example?q",
            "a.example/x?",
            "http://0x7f.1/x",
            "http://127.1/x",
            "http://010.0.0.1/x",
            "http://xn--e1afmkfd.xn--p1ai/x",
            "http://.a.example/x",
            "http://a.example./x",
            "mailto:user@a.example",
            "a.example/x:y",
            "a.example/пу",
        ] {
            assert_eq!(url(value), None, "{value}");
        }
        assert_eq!(domain("d1.bad2.org"), Some("d1.bad2.org"));
        assert_eq!(domain("192.0.2.1"), None);
        assert_eq!(domain("www.bad2.org"), Some("bad2.org"));
        assert_eq!(domain("www.192.0.2.1"), None);
    }
}
