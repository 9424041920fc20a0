//! URL normalization, as CyberTrace does it before storing and before looking up: lower-cased
//! host with `www.` and a leading `.` stripped, Punycode for Unicode hosts, IPv4 in hex, octal
//! or short form made canonical, scheme, port, user info and fragment dropped, dot-segments
//! removed, path and query percent-decoded.
//!
//! `https://www.example.com:443/?q=hello%20world#fragment` → `example.com/?q=hello world`.

use std::net::IpAddr;

use ::url::{Host, Url};
use percent_encoding::percent_decode_str;

use super::parse::IndicatorError;

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
    let bad = |reason: &str| IndicatorError::BadUrl {
        value: input.to_owned(),
        reason: reason.to_owned(),
    };
    // What the URL parser trims: C0 controls and space (not all of Unicode's whitespace).
    let trimmed = input.trim_matches(|c: char| c <= ' ');
    // Indicators and log fields often carry no scheme: read them as http URLs.
    let parsed = if scheme_len(trimmed).is_some() {
        Url::parse(trimmed)
    } else {
        Url::parse(&format!("http://{trimmed}"))
    }
    .map_err(|e| bad(&e.to_string()))?;
    let host = match parsed.host() {
        Some(Host::Domain(domain)) => {
            canonical_host(domain).ok_or_else(|| bad("empty or invalid host"))?
        }
        Some(Host::Ipv4(ip)) => UrlHost::Ip(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => UrlHost::Ip(IpAddr::V6(ip)),
        None => return Err(bad("no host")),
    };
    // Decoding can end the path or query in a space or control character (`%20`, `%0E`),
    // which any later parse of the text trims; trimming it here keeps normalization
    // idempotent. An empty query is none.
    let trailing = |c: char| c <= ' ';
    let path = decode(parsed.path());
    let query = parsed
        .query()
        .map(|q| decode(q).trim_end_matches(trailing).to_owned())
        .filter(|q| !q.is_empty());
    let mut text = host.text();
    match query {
        Some(query) => {
            text.push_str(&path);
            text.push('?');
            text.push_str(&query);
        }
        // `example.com/` and `example.com` are one URL.
        None => {
            let path = path.trim_end_matches(trailing);
            if path != "/" {
                text.push_str(path);
            }
        }
    }
    Ok(NormalizedUrl { text, host })
}

/// The length of `text`'s scheme and its `://`, if it starts with one (RFC 3986: a letter,
/// then letters, digits, `+`, `-` or `.`). `a/://x` has none: that `://` is in a path.
pub(super) fn scheme_len(text: &str) -> Option<usize> {
    let (scheme, _) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme.len() + 3)
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

/// Percent-decodes a path or query, except what would change the URL's structure if the text
/// were read again: `%23` (`#`), `%3F` (`?`), `%25` (`%`) and `%5C` (`\`, read as `/`) stay
/// escaped, and decoded tabs and
/// line breaks are dropped, as a parser drops them. Normalizing a normalized URL changes nothing.
fn decode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut segment_start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        let escape = text
            .get(i + 1..i + 3)
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
        let kept = match escape.map(str::to_ascii_uppercase).as_deref() {
            Some(code @ ("23" | "3F" | "25" | "5C")) => format!("%{code}"),
            Some(_) => {
                i += 3;
                continue;
            }
            // A `%` starting no escape is a literal percent sign: written escaped, it cannot
            // join what follows into an escape when the text is decoded again.
            None => "%25".to_owned(),
        };
        out.push_str(&percent_decode_str(&text[segment_start..i]).decode_utf8_lossy());
        out.push_str(&kept);
        i += if escape.is_some() { 3 } else { 1 };
        segment_start = i;
    }
    out.push_str(&percent_decode_str(&text[segment_start..]).decode_utf8_lossy());
    out.retain(|c| !matches!(c, '\t' | '\n' | '\r'));
    out
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
    fn trailing_whitespace_and_empty_queries_do_not_count() {
        // Found by the property test: `a? #` gave `a/? `, which normalized again to `a/?`.
        assert_eq!(norm("a? #"), "a");
        assert_eq!(norm("http://a.example/x?"), "a.example/x");
        assert_eq!(norm("http://a.example/x%20"), "a.example/x");
        assert_eq!(norm("http://a.example/?q=1%20"), "a.example/?q=1");
        // Also found by it: a decoded CR vanished when the text was read again.
        assert_eq!(norm("0/%0D/."), "0.0.0.0//");
    }

    #[test]
    fn escapes_that_would_change_the_structure_stay_escaped() {
        assert_eq!(
            norm("http://a.example/x%23y%3fz%2541"),
            "a.example/x%23y%3Fz%2541"
        );
        assert_eq!(norm("a.example/x%23y%3Fz%2541"), "a.example/x%23y%3Fz%2541");
        assert_eq!(norm("a/%5c"), "a/%5C");
        assert_eq!(norm("a/%0e"), "a");
        assert_eq!(norm("a?%%300"), "a/?%2500");
        assert_eq!(norm("a/100%"), "a/100%25");
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
