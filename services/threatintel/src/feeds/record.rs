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
    /// A STIX bundle's object's place in `objects`, from 1.
    Object(usize),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Unknown => f.write_str("a record"),
            Location::Line(line) => write!(f, "line {line}"),
            Location::Record(number) => write!(f, "record {number}"),
            Location::Object(number) => write!(f, "object {number}"),
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

/// The longest text a record of an outside producer (a STIX bundle, a MISP feed) keeps as
/// a context value or a tag; the rest is cut. Such feeds come from servers the service polls:
/// a name of megabytes would be kept once per indicator value.
pub const MAX_TEXT_BYTES: usize = 1024;
/// The most tags such a record keeps (they also choose its category, first to last).
pub const MAX_TAGS: usize = 32;

/// The longest piece of a producer's text (an id, a type) an error or skip message names.
const MAX_NAMED_BYTES: usize = 128;

/// `text` cut to [`MAX_TEXT_BYTES`] at a character.
pub fn bounded(text: &str) -> &str {
    cut(text, MAX_TEXT_BYTES)
}

/// `text` as a message names it: cut to [`MAX_NAMED_BYTES`], so messages stay short.
pub fn named(text: &str) -> &str {
    cut(text, MAX_NAMED_BYTES)
}

fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The first [`MAX_TAGS`] of `tags`, each [`bounded`].
pub fn bounded_tags<'a>(tags: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    tags.take(MAX_TAGS).map(bounded).collect()
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

/// Why a record is left out of a feed that loads, as the load report counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipReason {
    /// A URL with another scheme than http, https or ftp, or no host.
    NotWebUrl,
    /// A STIX pattern that is not STIX patterning.
    PatternSyntax,
    /// A STIX indicator whose pattern is in another language (Sigma, YARA, …).
    PatternType,
    PatternAnd,
    PatternSequence,
    PatternQualifier,
    PatternOperator,
    PatternObjectPath,
    /// A value that is not an indicator of the kind its path names.
    InvalidValue,
    /// A pattern naming more values than one record may.
    TooLarge,
    Revoked,
    Expired,
    /// A MISP attribute not meant for detection (`to_ids: false`).
    NotForDetection,
    /// A MISP attribute of a type we do not look up.
    AttributeType,
}

impl SkipReason {
    /// The reason as reports count it: short and fixed.
    pub fn key(self) -> &'static str {
        match self {
            SkipReason::NotWebUrl => "not a web URL",
            SkipReason::PatternSyntax => "pattern syntax",
            SkipReason::PatternType => "pattern type not stix",
            SkipReason::PatternAnd => "pattern with AND",
            SkipReason::PatternSequence => "pattern with FOLLOWEDBY",
            SkipReason::PatternQualifier => "pattern with a qualifier",
            SkipReason::PatternOperator => "pattern operator other than =",
            SkipReason::PatternObjectPath => "pattern object path not looked up",
            SkipReason::InvalidValue => "value not of its kind",
            SkipReason::TooLarge => "pattern too large",
            SkipReason::Revoked => "revoked",
            SkipReason::Expired => "expired",
            SkipReason::NotForDetection => "not for detection (to_ids false)",
            SkipReason::AttributeType => "attribute type not looked up",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_text_is_cut_at_a_character() {
        let long = "é".repeat(MAX_TEXT_BYTES);
        assert_eq!(bounded(&long).len(), MAX_TEXT_BYTES);
        let odd = format!("a{long}");
        assert_eq!(bounded(&odd).len(), MAX_TEXT_BYTES - 1);
        assert_eq!(bounded("short"), "short");
        let many: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        assert_eq!(
            bounded_tags(many.iter().map(String::as_str)).len(),
            MAX_TAGS
        );
    }
}
