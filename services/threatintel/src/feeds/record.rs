//! A feed record as the format readers hand it on, and the errors of reading one.

use crate::index::IndicatorKind;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: line {line}: {reason}")]
    Syntax {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("{file}: {location}: {reason}")]
    Record {
        file: String,
        location: String,
        reason: String,
    },
}

/// Where a record is in its feed file, as reports name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Location {
    #[default]
    Unknown,
    /// A CSV row's line.
    Line(u64),
    /// A JSON record's place in the array, from 1.
    Record(usize),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Unknown => f.write_str("a record"),
            Location::Line(line) => write!(f, "line {line}"),
            Location::Record(number) => write!(f, "record {number}"),
        }
    }
}

/// One feed record's fields, borrowed from the file being read.
#[derive(Clone, Copy, Debug, Default)]
pub struct FeedEntry<'a> {
    pub location: Location,
    pub indicator: &'a str,
    pub category: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub context: &'a [(&'a str, &'a str)],
    pub tags: &'a [&'a str],
    pub exact: bool,
    /// Milliseconds since the Unix epoch; 0 = not given.
    pub last_seen: i64,
    pub expires_at: i64,
}

/// What a format reader hands each record to; `Err` is why the record is refused.
pub type EntrySink<'s> = dyn FnMut(&FeedEntry<'_>) -> Result<(), String> + 's;

pub fn parse_kind(kind: &str) -> Result<Option<IndicatorKind>, String> {
    Ok(Some(match kind.to_ascii_lowercase().as_str() {
        "" => return Ok(None),
        "ip" => IndicatorKind::Ip,
        "url" => IndicatorKind::Url,
        "domain" => IndicatorKind::Domain,
        "hash" | "md5" | "sha1" | "sha256" => IndicatorKind::Hash,
        _ => return Err(format!("unknown type `{kind}` (ip, url, domain, hash)")),
    }))
}
