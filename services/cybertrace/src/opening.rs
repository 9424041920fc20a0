//! The optional opening a connection starts with, saying how it wants its answers.

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

/// The opening a client sends to get every answer on its socket, each line's answers ended
/// by a finished event: what the enrichment service's `cybertrace` source sends.
pub const CLIENT_OPENING: &str = "X-KF-SendFinishedEventX-KF-ReplyBack";

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
        CLIENT_OPENING,
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

    proptest::proptest! {
        #[test]
        fn any_bytes_give_an_opening(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), last in proptest::prelude::any::<bool>()) {
            if let Opening::Handshake(_, used) = read_opening(&bytes, last) {
                proptest::prop_assert!(used <= bytes.len());
            }
        }
    }
}
