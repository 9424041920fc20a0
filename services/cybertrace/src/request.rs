//! Event lines: the listener reads the values to look up in each ([`lookups_of`]); a client
//! writes one value per line ([`request_line`]) that the listener reads back as exactly that
//! value.

use std::borrow::Cow;

use crate::{MAX_LINE, ValueKind};

/// The parameters a line may name, and the kind of value each holds.
const PARAMS: [(&str, ValueKind); 7] = [
    ("url", ValueKind::Url),
    ("ip", ValueKind::Ip),
    ("domain", ValueKind::Domain),
    ("md5", ValueKind::Hash),
    ("sha1", ValueKind::Hash),
    ("sha256", ValueKind::Hash),
    ("hash", ValueKind::Hash),
];

/// One value of a line to look up: the parameter it came from (`url`, or the detected kind
/// for free text) and the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineLookup<'a> {
    pub param: &'a str,
    pub value: &'a str,
    pub kind: Option<ValueKind>,
}

fn kind_of_param(name: &str) -> Option<Option<ValueKind>> {
    let name = name.to_ascii_lowercase();
    PARAMS
        .iter()
        .find(|(param, _)| *param == name)
        .map(|(_, kind)| Some(*kind))
}

/// The lookups of one event line: its `url=` / `ip=` / `md5=` / `sha1=` / `sha256=` pairs, or,
/// when it has none, the URLs, IP addresses and hashes found in its free text.
pub fn lookups_of(line: &str) -> Vec<LineLookup<'_>> {
    let pairs: Vec<LineLookup<'_>> = line
        .split_whitespace()
        .filter_map(|token| {
            let (name, value) = token.split_once('=')?;
            let kind = kind_of_param(name)?;
            (!value.is_empty()).then_some(LineLookup {
                param: name,
                value,
                kind,
            })
        })
        .collect();
    if !pairs.is_empty() {
        return pairs;
    }
    let separators = |c: char| c.is_whitespace() || "\"'<>()[]{},;|`".contains(c);
    line.split(separators)
        .map(|token| token.trim_end_matches(['.', ':', '!', '?']))
        .filter_map(|token| {
            let kind = free_text_kind(token)?;
            Some(LineLookup {
                param: kind.name(),
                value: token,
                kind: Some(kind),
            })
        })
        .collect()
}

/// The kind of a free-text token, if it is one worth looking up.
fn free_text_kind(token: &str) -> Option<ValueKind> {
    if token.len() < 7 {
        return None;
    }
    let hex = token.bytes().all(|b| b.is_ascii_hexdigit());
    if hex && matches!(token.len(), 32 | 40 | 64) {
        Some(ValueKind::Hash)
    } else if token.parse::<std::net::IpAddr>().is_ok() {
        Some(ValueKind::Ip)
    } else if token.contains("://") || token.starts_with("www.") {
        Some(ValueKind::Url)
    } else {
        None
    }
}

/// The request line for one `value` of `kind`, or why it is not sent: one value is one
/// lookup, so the value may not hold what the listener reads as a separator (whitespace, a
/// line break). In a URL those are percent-encoded, as a URL may hold them; any other kind
/// of value holding them is not a value of that kind.
pub fn request_line(kind: ValueKind, value: &str) -> Result<String, &'static str> {
    let value = value.trim();
    if value.is_empty() {
        return Err("empty value");
    }
    let separates = |c: char| c.is_whitespace() || c.is_control();
    let (param, value) = match kind {
        ValueKind::Ip | ValueKind::Hash | ValueKind::Domain if value.contains(separates) => {
            return Err("holds whitespace or a control character");
        }
        ValueKind::Ip => ("ip", Cow::Borrowed(value)),
        ValueKind::Domain => ("domain", Cow::Borrowed(value)),
        ValueKind::Hash => match value.len() {
            40 => ("sha1", Cow::Borrowed(value)),
            64 => ("sha256", Cow::Borrowed(value)),
            _ => ("md5", Cow::Borrowed(value)),
        },
        ValueKind::Url => ("url", escape_separators(value)),
    };
    let line = format!("{param}={value} ");
    if line.len() > MAX_LINE {
        return Err("longer than a CyberTrace line may be (64 KiB)");
    }
    Ok(line + "\n")
}

/// `url` with each whitespace or control character percent-encoded (its UTF-8 bytes).
fn escape_separators(url: &str) -> Cow<'_, str> {
    if !url.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Cow::Borrowed(url);
    }
    let mut escaped = String::with_capacity(url.len() + 16);
    for c in url.chars() {
        if c.is_whitespace() || c.is_control() {
            let mut bytes = [0u8; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                escaped.push_str(&format!("%{byte:02X}"));
            }
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_looked_up_by_their_parameter() {
        let found = lookups_of(
            "url=http://fakess123.nu ip=192.0.2.1 md5=44d88612fea8a8f36de82e1278abb02f other=x ",
        );
        let names: Vec<_> = found.iter().map(|l| (l.param, l.value)).collect();
        assert_eq!(
            names,
            [
                ("url", "http://fakess123.nu"),
                ("ip", "192.0.2.1"),
                ("md5", "44d88612fea8a8f36de82e1278abb02f")
            ]
        );
        assert_eq!(found[0].kind, Some(ValueKind::Url));
    }

    #[test]
    fn free_text_yields_urls_ips_and_hashes() {
        let line = r#"Blocked "http://fakess123.nu/x" from 192.0.2.1, file 44d88612fea8a8f36de82e1278abb02f. See www.example.com/testpage/a!"#;
        let found: Vec<_> = lookups_of(line)
            .iter()
            .map(|l| (l.param, l.value))
            .collect();
        assert_eq!(
            found,
            [
                ("url", "http://fakess123.nu/x"),
                ("ip", "192.0.2.1"),
                ("hash", "44d88612fea8a8f36de82e1278abb02f"),
                ("url", "www.example.com/testpage/a")
            ]
        );
        assert!(lookups_of("nothing to see here").is_empty());
        assert!(lookups_of("").is_empty());
    }

    #[test]
    fn requests_are_one_line_each() {
        assert_eq!(
            request_line(ValueKind::Url, "http://a.example/\r\nip=1.2.3.4").unwrap(),
            "url=http://a.example/%0D%0Aip=1.2.3.4 \n"
        );
        assert_eq!(
            request_line(ValueKind::Url, " http://benign/ ip=192.0.2.1 ").unwrap(),
            "url=http://benign/%20ip=192.0.2.1 \n"
        );
        assert!(
            request_line(ValueKind::Hash, &"a".repeat(64))
                .unwrap()
                .starts_with("sha256=")
        );
    }

    #[test]
    fn values_the_listener_would_refuse_are_not_sent() {
        assert!(request_line(ValueKind::Url, "  ").is_err());
        let long = format!("http://a/{}", "x".repeat(MAX_LINE));
        assert!(request_line(ValueKind::Url, &long).is_err());
        assert!(request_line(ValueKind::Ip, "192.0.2.1 md5=00").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_line_gives_lookups_that_are_part_of_it(line in "\\PC{0,120}") {
            for lookup in lookups_of(&line) {
                proptest::prop_assert!(line.contains(lookup.value));
                proptest::prop_assert!(!lookup.value.is_empty());
            }
        }

        /// What a client writes, the listener reads back as that one value of that kind.
        #[test]
        fn a_request_line_is_read_back_as_its_one_value(value in "[!-~]{1,80}", kind in 0..4usize) {
            let kind = [ValueKind::Url, ValueKind::Ip, ValueKind::Domain, ValueKind::Hash][kind];
            let line = request_line(kind, &value).unwrap();
            let read = lookups_of(line.trim_end_matches('\n'));
            proptest::prop_assert_eq!(read.len(), 1, "{}", line);
            proptest::prop_assert_eq!(read[0].kind, Some(kind));
            proptest::prop_assert_eq!(read[0].value, value.as_str());
        }
    }
}
