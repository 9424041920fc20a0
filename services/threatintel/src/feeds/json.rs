//! JSON feeds: an array of records (`[{"indicator", "context", "tags", ...}]`, CyberTrace's
//! supplier format), or an object giving the supplier's settings and a default category
//! around the array: `{"category": "KL_Malicious_URL", "confidence": 80, "indicators": [...]}`.

use serde::Deserialize;

use super::record::{FeedError, FeedRecord};

#[derive(Deserialize)]
#[serde(untagged)]
enum FeedFile {
    Records(Vec<FeedRecord>),
    WithSettings(FeedWithSettings),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedWithSettings {
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    confidence: Option<u8>,
    #[serde(default)]
    retention_minutes: Option<u32>,
    #[serde(default)]
    description: Option<String>,
    indicators: Vec<FeedRecord>,
}

/// What a feed file holds: the supplier's settings, if it gives them, and its records.
pub struct ParsedFeed {
    pub category: Option<String>,
    pub confidence: Option<u8>,
    pub retention_minutes: Option<u32>,
    pub description: Option<String>,
    pub records: Vec<FeedRecord>,
}

pub fn parse(file: &str, text: &str) -> Result<ParsedFeed, FeedError> {
    // Untagged enums hide where the syntax broke; parse as a value first for a line number.
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| FeedError::Syntax {
        file: file.to_owned(),
        line: e.line(),
        reason: e.to_string(),
    })?;
    let parsed = serde_json::from_value(value).map_err(|e| FeedError::Record {
        file: file.to_owned(),
        location: "content".to_owned(),
        reason: format!("neither an array of records nor an object with `indicators`: {e}"),
    })?;
    Ok(match parsed {
        FeedFile::Records(records) => ParsedFeed {
            category: None,
            confidence: None,
            retention_minutes: None,
            description: None,
            records,
        },
        FeedFile::WithSettings(feed) => ParsedFeed {
            category: feed.category,
            confidence: feed.confidence,
            retention_minutes: feed.retention_minutes,
            description: feed.description,
            records: feed.indicators,
        },
    })
}
