//! A feed record before it becomes an index entry, and the errors of reading one.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::index::{Indicator, IndicatorKind};

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

/// A record as feeds write it (CyberTrace's supplier format plus optional fields).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedRecord {
    pub indicator: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub context: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub exact: bool,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub last_seen: i64,
    #[serde(default)]
    pub expires_at: i64,
    /// Where the record is in its file, for error messages (`line 7`, `record 3`).
    #[serde(skip)]
    pub location: Option<String>,
}

pub fn parse_kind(kind: &str) -> Option<IndicatorKind> {
    match kind.to_ascii_lowercase().as_str() {
        "ip" => Some(IndicatorKind::Ip),
        "url" => Some(IndicatorKind::Url),
        "domain" => Some(IndicatorKind::Domain),
        "hash" | "md5" | "sha1" | "sha256" => Some(IndicatorKind::Hash),
        _ => None,
    }
}

impl FeedRecord {
    /// The indicator of this record from `supplier`, with `default_category` when the record
    /// names none; `Err` says what is wrong.
    pub fn into_indicator(
        self,
        supplier: &str,
        default_category: Option<&str>,
        loaded_at_ms: i64,
    ) -> Result<Indicator, String> {
        let category = self
            .category
            .or_else(|| default_category.map(str::to_owned))
            .ok_or("no category (give one per record or per file)")?;
        let kind = match self.kind.as_deref() {
            None | Some("") => None,
            Some(kind) => Some(
                parse_kind(kind)
                    .ok_or_else(|| format!("unknown type `{kind}` (ip, url, domain, hash)"))?,
            ),
        };
        let context = self
            .context
            .into_iter()
            .map(|(key, value)| {
                let text = match value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (key, text)
            })
            .collect();
        Ok(Indicator {
            value: self.indicator,
            kind,
            category,
            supplier: supplier.to_owned(),
            context,
            tags: self.tags,
            last_seen_ms: if self.last_seen == 0 {
                loaded_at_ms
            } else {
                self.last_seen
            },
            expires_at_ms: self.expires_at,
            exact: self.exact,
        })
    }
}
