//! URL normalization, as CyberTrace does it before storing and before looking up: lower-cased
//! host with `www.` and a leading `.` stripped, Punycode for Unicode hosts, IPv4 in hex, octal
//! or short form made canonical, scheme, port, user info and fragment dropped, dot-segments
//! removed, path and query percent-decoded once, losslessly (see [`super::percent`] for the
//! escapes that stay).
//!
//! `https://www.example.com:443/?q=hello%20world#fragment` → `example.com/?q=hello world`.
//!
//! Only web URLs are URL indicators ([`super::url_parts`]): a web scheme or none, and a host.
//! The host is read by the `url` crate (WHATWG rules: IDNA, IPv4 forms); the path and query
//! are read here, so that a percent-encoded dot or slash stays data and two different URLs
//! never share a key.

use std::{borrow::Cow, net::IpAddr};

use ::url::{Host, Url};

use super::{
    error::IndicatorError,
    percent::{push_query, push_segment},
    url_parts::{self, UrlParts},
};

/// A normalized URL and its host, which a lookup also checks as a domain or an IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormalizedUrl {
    pub text: String,
    pub host: UrlHost,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlHost {
    Domain(String),
    Ip(IpAddr),
}

impl UrlHost {
    fn text(&self) -> String {
        match self {
            UrlHost::Domain(domain) => domain.clone(),
            UrlHost::Ip(IpAddr::V4(ip)) => ip.to_string(),
            UrlHost::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
        }
    }
}

pub fn normalize_url(input: &str) -> Result<NormalizedUrl, IndicatorError> {
    let cleaned = cleaned(input);
    let parts = url_parts::split(&cleaned).map_err(|reason| IndicatorError::NotWebUrl {
        value: input.to_owned(),
        reason,
    })?;
    let host = parse_host(parts.authority).map_err(|reason| IndicatorError::BadUrl {
        value: input.to_owned(),
        reason,
    })?;
    let mut text = host.text();
    push_path_and_query(&parts, &mut text);
    Ok(NormalizedUrl { text, host })
}

/// `input` as a URL parser reads it: C0 controls and spaces trimmed from both ends, tabs and
/// line breaks removed wherever they are.
pub(super) fn cleaned(input: &str) -> Cow<'_, str> {
    let trimmed = input.trim_matches(|c: char| c <= ' ');
    if trimmed.contains(['\t', '\n', '\r']) {
        Cow::Owned(trimmed.replace(['\t', '\n', '\r'], ""))
    } else {
        Cow::Borrowed(trimmed)
    }
}

/// Appends the normalized path and query of `parts` to a key holding its host: dot-segments
/// removed, escapes made canonical, an empty query dropped, a lone `/` dropped (`example.com/`
/// and `example.com` are one URL), and spaces at the very end escaped (a parser would trim
/// them when the key is read again).
pub(super) fn push_path_and_query(parts: &UrlParts<'_>, key: &mut String) {
    // The path begins with a separator: the first piece is empty.
    let pieces = parts.path.split(['/', '\\']).skip(1);
    let query = parts.query.filter(|query| !query.is_empty());
    if pieces.clone().any(|piece| piece == "." || piece == "..") {
        push_segments(without_dot_segments(pieces).into_iter(), query, key);
    } else {
        push_segments(pieces, query, key);
    }
    if let Some(query) = query {
        key.push('?');
        push_query(query, key);
    }
    let spaces = key.len() - key.trim_end_matches(' ').len();
    if spaces > 0 {
        key.truncate(key.len() - spaces);
        key.push_str(&"%20".repeat(spaces));
    }
}

/// Appends the path of `segments`, unless it is the root and no query follows.
fn push_segments<'a>(
    segments: impl Iterator<Item = &'a str> + Clone,
    query: Option<&str>,
    key: &mut String,
) {
    let mut first_two = segments.clone();
    let (first, second) = (first_two.next(), first_two.next());
    let root = matches!((first, second), (None, _) | (Some(""), None));
    if root && query.is_none() {
        return;
    }
    if first.is_none() {
        key.push('/');
    }
    for segment in segments {
        key.push('/');
        push_segment(segment, key);
    }
}

/// `pieces` with `.` and `..` resolved as RFC 3986 says. Only a literal dot is a
/// dot-segment: `%2E` is data.
fn without_dot_segments<'a>(pieces: impl Iterator<Item = &'a str> + Clone) -> Vec<&'a str> {
    let mut segments = Vec::new();
    let count = pieces.clone().count();
    for (i, piece) in pieces.enumerate() {
        let last = i + 1 == count;
        match piece {
            "." => {}
            ".." => {
                segments.pop();
            }
            piece => {
                segments.push(piece);
                continue;
            }
        }
        // `/a/b/..` is `/a/`: a dot-segment at the end leaves the path ending in `/`.
        if last {
            segments.push("");
        }
    }
    segments
}

/// The host of `authority` (user info and port dropped), read by the `url` crate's rules.
fn parse_host(authority: &str) -> Result<UrlHost, String> {
    if let Some(host) = plain_domain(authority) {
        return Ok(host);
    }
    let parsed = Url::parse(&format!("http://{authority}/")).map_err(|e| e.to_string())?;
    match parsed.host() {
        Some(Host::Domain(domain)) => {
            canonical_host(domain).ok_or_else(|| "empty or invalid host".to_owned())
        }
        Some(Host::Ipv4(ip)) => Ok(UrlHost::Ip(IpAddr::V4(ip))),
        Some(Host::Ipv6(ip)) => Ok(UrlHost::Ip(IpAddr::V6(ip))),
        None => Err("no host".to_owned()),
    }
}

/// `authority` read without the `url` crate when it is a plain lower-case ASCII domain, which
/// that parser would leave as it is: no user info, port, escape, upper case or Unicode, no
/// Punycode label to check, and a last label that is not a number (which makes an IPv4
/// address of it). Most lookups are such; the parser is the slow part of normalizing them.
fn plain_domain(authority: &str) -> Option<UrlHost> {
    let plain = authority
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let last = authority.trim_end_matches('.').rsplit('.').next()?;
    let numeric =
        last.is_empty() || last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x");
    let punycode = authority.split('.').any(|label| label.starts_with("xn--"));
    if !plain || numeric || punycode {
        return None;
    }
    canonical_host(authority)
}

/// A domain as the parser left it (lower case, Punycode), without leading and trailing dots
/// and without `www.` prefixes.
pub(super) fn canonical_domain(domain: &str) -> Option<String> {
    let mut domain = domain.trim_matches('.');
    while let Some(rest) = domain.strip_prefix("www.") {
        domain = rest.trim_start_matches('.');
    }
    (!domain.is_empty()).then(|| domain.to_owned())
}

/// The host a parsed domain really is once trimmed: `0..` trims to `0`, which is the IPv4
/// address 0.0.0.0 when read again.
fn canonical_host(domain: &str) -> Option<UrlHost> {
    let trimmed = canonical_domain(domain)?;
    if trimmed == domain {
        // Nothing trimmed: the parser's verdict stands (the common case, parsed once).
        return Some(UrlHost::Domain(trimmed));
    }
    // A whole URL, as the next normalization will read it: `Host::parse` alone does not apply
    // the IPv4 rules of http URLs.
    let reread = Url::parse(&format!("http://{trimmed}/")).ok()?;
    Some(match reread.host()? {
        Host::Domain(domain) => UrlHost::Domain(canonical_domain(domain)?),
        Host::Ipv4(ip) => UrlHost::Ip(IpAddr::V4(ip)),
        Host::Ipv6(ip) => UrlHost::Ip(IpAddr::V6(ip)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(input: &str) -> String {
        normalize_url(input)
            .unwrap_or_else(|e| panic!("{input}: {e}"))
            .text
    }

    #[test]
    fn the_design_test_vector() {
        assert_eq!(
            norm("https://www.example.com:443/?q=hello%20world#fragment"),
            "example.com/?q=hello world"
        );
    }

    #[test]
    fn scheme_port_case_www_and_fragment_do_not_matter() {
        for input in [
            "http://fakess123.nu",
            "fakess123.nu",
            "HTTPS://WWW.FAKESS123.NU:8443/",
            "http://user:pw@fakess123.nu/#top",
            "http://.fakess123.nu.",
        ] {
            assert_eq!(norm(input), "fakess123.nu", "{input}");
        }
    }

    #[test]
    fn dot_segments_are_removed_and_paths_decoded() {
        assert_eq!(
            norm("http://example.com/a/./b/../c%20d"),
            "example.com/a/c d"
        );
        assert_eq!(
            norm("example.com/testpage/index.html"),
            "example.com/testpage/index.html"
        );
    }

    #[test]
    fn ipv4_forms_are_made_canonical() {
        for input in [
            "http://0x7f.1/x",
            "http://0177.0.0.1/x",
            "http://2130706433/x",
            "http://127.1/x",
        ] {
            assert_eq!(norm(input), "127.0.0.1/x", "{input}");
        }
        assert_eq!(
            normalize_url("http://127.1/").unwrap().host,
            UrlHost::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(norm("http://[2001:DB8::1]:80/a"), "[2001:db8::1]/a");
    }

    #[test]
    fn empty_queries_do_not_count_and_trailing_spaces_stay_escaped() {
        // Found by the property test: `a? #` gave `a/? `, which normalized again to `a/?`.
        // Its query is one space: escaped, it reads back as itself.
        assert_eq!(norm("a? #"), "a/?%20");
        assert_eq!(norm("a/?%20"), "a/?%20");
        assert_eq!(norm("http://a.example/x?"), "a.example/x");
        // A space at the very end would be trimmed when the key is read again: it stays
        // escaped, so `x ` and `x` remain two URLs.
        assert_eq!(norm("http://a.example/x%20"), "a.example/x%20");
        assert_eq!(norm("http://a.example/?q=1%20"), "a.example/?q=1%20");
        assert_eq!(norm("http://a.example/x%20y"), "a.example/x y");
        // Also found by it: a decoded CR vanished when the text was read again.
        assert_eq!(norm("0/%0D/."), "0.0.0.0/%0D/");
    }

    #[test]
    fn escapes_that_would_change_the_structure_stay_escaped() {
        assert_eq!(
            norm("http://a.example/x%23y%3fz%2541"),
            "a.example/x%23y%3Fz%2541"
        );
        assert_eq!(norm("a.example/x%23y%3Fz%2541"), "a.example/x%23y%3Fz%2541");
        assert_eq!(norm("a/%5c"), "a/%5C");
        assert_eq!(norm("a/b%2Fc/%2E%2E"), "a/b%2Fc/%2E%2E");
        assert_eq!(norm("a/%0e"), "a/%0E");
        assert_eq!(norm("a?%%300"), "a/?%2500");
        assert_eq!(norm("a/100%"), "a/100%25");
        // In a query `?` is data; `&`, `=` and `+` escaped are not the separators.
        assert_eq!(
            norm("http://www.google.com/q?r?s%3F"),
            norm("google.com/q?r?s?")
        );
        assert_eq!(norm("a/?x=1%26y%3D2"), "a/?x=1%26y%3D2");
        // And a `://` inside a path is not a scheme.
        let once = norm("A/:\\/%Aa");
        assert_eq!(norm(&once), once);
        // And a decoded Unicode space at the end stays (the parser trims only C0 and space).
        let once = norm("a/\u{2000}#");
        assert_eq!(norm(&once), once);
        assert_eq!(norm("0.."), "0.0.0.0");
        assert_eq!(norm("www.www.example.com"), "example.com");
    }

    #[test]
    fn decoding_is_lossless() {
        assert_eq!(norm("http://a.com/%FF"), "a.com/%FF");
        assert_eq!(norm("http://a.com/%ff"), "a.com/%FF");
        assert_ne!(norm("http://a.com/%FF"), norm("http://a.com/%FE"));
        assert_eq!(norm("http://a.com/%D0%BF%D1%83"), "a.com/пу");
    }

    #[test]
    fn only_web_urls_with_a_host_are_urls() {
        for input in [
            "mailto:user@example.com",
            "javascript:alert(1)",
            "/blah",
            "http:///blah;param?query#ref",
        ] {
            let error = normalize_url(input).unwrap_err();
            assert!(
                matches!(error, IndicatorError::NotWebUrl { .. }),
                "{input}: {error}"
            );
        }
        assert_eq!(norm("FTP://files.example/a"), "files.example/a");
        assert_eq!(norm("example.com:8080/x"), "example.com/x");
    }

    #[test]
    fn unicode_hosts_become_punycode() {
        assert_eq!(norm("http://пример.рф/путь"), "xn--e1afmkfd.xn--p1ai/путь");
    }

    #[test]
    fn unparseable_urls_are_errors_naming_the_value() {
        for input in ["", "http://", "http://exa mple.com/", "http://[::1/"] {
            let error = normalize_url(input).unwrap_err().to_string();
            assert!(error.contains(&format!("`{input}`")), "{input}: {error}");
        }
    }
}
