//! The CyberTrace TCP protocol, both halves in one place: the threat-intel service's
//! listener reads openings and event lines and writes detections and finished events; the
//! enrichment service's `cybertrace` source writes openings and lines and reads detections
//! back. Each format is written and read here, so a change to one is a change to both — the
//! tests write every format and read it back.
//!
//! The protocol: TCP, UTF-8, events separated by LF, CR ignored. A connection that opens with
//! `X-KF-ReplyBack` gets its answers on the same socket; `X-KF-SendFinishedEvent` before it
//! also asks for a `LookupFinished` line after each event's detections.

pub mod format;
pub mod opening;
pub mod request;

/// The longest line a listener takes: longer ones are refused, and a client does not send them.
pub const MAX_LINE: usize = 64 * 1024;

/// What a looked-up value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueKind {
    Url,
    Ip,
    Domain,
    Hash,
}

impl ValueKind {
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Url => "url",
            ValueKind::Ip => "ip",
            ValueKind::Domain => "domain",
            ValueKind::Hash => "hash",
        }
    }
}
