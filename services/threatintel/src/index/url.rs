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
    let trimmed = input.trim();
    // Indicators and log fields often carry no scheme: read them as http URLs.
    let parsed = if trimmed.contains("://") {
        Url::parse(trimmed)
    } else {
        Url::parse(&format!("http://{trimmed}"))
    }
    .map_err(|e| bad(&e.to_string()))?;
    let host = match parsed.host() {
        Some(Host::Domain(domain)) => {
            UrlHost::Domain(canonical_domain(domain).ok_or_else(|| bad("empty host"))?)
        }
        Some(Host::Ipv4(ip)) => UrlHost::Ip(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => UrlHost::Ip(IpAddr::V6(ip)),
        None => return Err(bad("no host")),
    };
    let path = decode(parsed.path());
    let mut text = host.text();
    match parsed.query() {
        Some(query) => {
            text.push_str(&path);
            text.push('?');
            text.push_str(&decode(query));
        }
        // `example.com/` and `example.com` are one URL.
        None if path != "/" => text.push_str(&path),
        None => {}
    }
    Ok(NormalizedUrl { text, host })
}

/// A domain as the parser left it (lower case, Punycode), without leading and trailing dots
/// and without `www.`.
pub(super) fn canonical_domain(domain: &str) -> Option<String> {
    let domain = domain.trim_matches('.');
    let domain = domain.strip_prefix("www.").unwrap_or(domain);
    (!domain.is_empty()).then(|| domain.to_owned())
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
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
