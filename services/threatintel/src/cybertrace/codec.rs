//! Reading the CyberTrace protocol: the optional handshake a connection starts with, and the
//! values to look up in each event line.

use crate::index::IndicatorKind;

/// What a connection asked for in its first bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handshake {
    /// Answers go back on this socket.
    pub reply_back: bool,
    /// A finished event follows the answers of each line.
    pub finished_events: bool,
    /// `X-KF-ReplyBackPING`: answer `PONG`.
    pub ping: bool,
}

/// Every opening CyberTrace knows, longest first. `X-KF-SaveStatistic` is accepted and has no
/// effect: statistics are always kept.
const OPENINGS: [(&str, Handshake); 5] = [
    (
        "X-KF-SendFinishedEventX-KF-ReplyBackX-KF-SaveStatistic",
        Handshake {
            reply_back: true,
            finished_events: true,
            ping: false,
        },
    ),
    (
        "X-KF-SendFinishedEventX-KF-ReplyBack",
        Handshake {
            reply_back: true,
            finished_events: true,
            ping: false,
        },
    ),
    (
        "X-KF-ReplyBackX-KF-SaveStatistic",
        Handshake {
            reply_back: true,
            finished_events: false,
            ping: false,
        },
    ),
    (
        "X-KF-ReplyBackPING",
        Handshake {
            reply_back: true,
            finished_events: false,
            ping: true,
        },
    ),
    (
        "X-KF-ReplyBack",
        Handshake {
            reply_back: true,
            finished_events: false,
            ping: false,
        },
    ),
];

/// What the first bytes of a connection say.
#[derive(Debug, PartialEq, Eq)]
pub enum Opening {
    /// The handshake, and how many bytes it took.
    Handshake(Handshake, usize),
    /// No handshake: plain events, detections go to the log.
    Plain,
    /// The bytes so far could still become a longer opening: read more (or time out and
    /// take what matched).
    NeedMore,
}

/// Reads the opening from `bytes`. With `final_read` (more bytes are not coming soon), the
/// longest complete opening wins.
pub fn read_opening(bytes: &[u8], final_read: bool) -> Opening {
    let could_grow = OPENINGS
        .iter()
        .any(|(o, _)| o.len() > bytes.len() && o.as_bytes().starts_with(bytes));
    if could_grow && !final_read {
        return Opening::NeedMore;
    }
    OPENINGS
        .iter()
        .find(|(o, _)| bytes.starts_with(o.as_bytes()))
        .map_or(Opening::Plain, |(o, handshake)| {
            Opening::Handshake(*handshake, o.len())
        })
}

/// One value of a line to look up: the parameter it came from (`url`, or the detected kind
/// for free text) and the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineLookup<'a> {
    pub param: &'a str,
    pub value: &'a str,
    pub kind: Option<IndicatorKind>,
}

fn kind_of_param(name: &str) -> Option<Option<IndicatorKind>> {
    match name.to_ascii_lowercase().as_str() {
        "url" => Some(Some(IndicatorKind::Url)),
        "ip" => Some(Some(IndicatorKind::Ip)),
        "domain" => Some(Some(IndicatorKind::Domain)),
        "md5" | "sha1" | "sha256" | "hash" => Some(Some(IndicatorKind::Hash)),
        _ => None,
    }
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
fn free_text_kind(token: &str) -> Option<IndicatorKind> {
    if token.len() < 7 {
        return None;
    }
    let hex = token.bytes().all(|b| b.is_ascii_hexdigit());
    if hex && matches!(token.len(), 32 | 40 | 64) {
        Some(IndicatorKind::Hash)
    } else if token.parse::<std::net::IpAddr>().is_ok() {
        Some(IndicatorKind::Ip)
    } else if token.contains("://") || token.starts_with("www.") {
        Some(IndicatorKind::Url)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLY_BACK: Handshake = Handshake {
        reply_back: true,
        finished_events: false,
        ping: false,
    };

    #[test]
    fn openings_are_read_whole_and_longest_first() {
        let finished = Handshake {
            reply_back: true,
            finished_events: true,
            ping: false,
        };
        assert_eq!(
            read_opening(b"X-KF-SendFinishedEventX-KF-ReplyBackurl=a.b ", false),
            Opening::Handshake(finished, 36)
        );
        assert_eq!(
            read_opening(b"X-KF-ReplyBackPING", false),
            Opening::Handshake(
                Handshake {
                    ping: true,
                    ..REPLY_BACK
                },
                18
            )
        );
        assert_eq!(
            read_opening(b"X-KF-ReplyBackurl=x", false),
            Opening::Handshake(REPLY_BACK, 14)
        );
        assert_eq!(read_opening(b"X-KF-Reply", false), Opening::NeedMore);
        assert_eq!(
            read_opening(b"X-KF-ReplyBack", false),
            Opening::NeedMore,
            "PING may follow"
        );
        assert_eq!(
            read_opening(b"X-KF-ReplyBack", true),
            Opening::Handshake(REPLY_BACK, 14)
        );
        assert_eq!(read_opening(b"url=http://x ", false), Opening::Plain);
        assert_eq!(read_opening(b"X-KF-Nope", false), Opening::Plain);
        assert_eq!(read_opening(b"", false), Opening::NeedMore);
        assert_eq!(read_opening(b"", true), Opening::Plain);
    }

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
        assert_eq!(found[0].kind, Some(IndicatorKind::Url));
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
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_bytes_give_an_opening(bytes in proptest::collection::vec(any::<u8>(), 0..80), last in any::<bool>()) {
            if let Opening::Handshake(_, used) = read_opening(&bytes, last) {
                prop_assert!(used <= bytes.len());
            }
        }

        #[test]
        fn any_line_gives_lookups_that_are_part_of_it(line in "\\PC{0,120}") {
            for lookup in lookups_of(&line) {
                prop_assert!(line.contains(lookup.value));
                prop_assert!(!lookup.value.is_empty());
            }
        }
    }
}
