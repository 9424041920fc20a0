//! CSV feeds: a header row naming the columns. `indicator` and `category` are required;
//! `type`, `tags` (`;`-separated), `exact`, `last_seen` and `expires_at` are read when
//! present; every other column becomes context.

use super::{
    json::ParsedFeed,
    record::{FeedError, FeedRecord},
};

const KNOWN: [&str; 7] = [
    "indicator",
    "category",
    "type",
    "tags",
    "exact",
    "last_seen",
    "expires_at",
];

pub fn parse(file: &str, text: &str) -> Result<ParsedFeed, FeedError> {
    let mut reader = ::csv::ReaderBuilder::new()
        .trim(::csv::Trim::All)
        .from_reader(text.as_bytes());
    let syntax = |e: ::csv::Error| FeedError::Syntax {
        file: file.to_owned(),
        line: e.position().map_or(0, |p| p.line() as usize),
        reason: e.to_string(),
    };
    let headers = reader.headers().map_err(syntax)?.clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let indicator = column("indicator").ok_or_else(|| FeedError::Syntax {
        file: file.to_owned(),
        line: 1,
        reason: "the header has no `indicator` column".to_owned(),
    })?;
    let mut records = Vec::new();
    for row in reader.records() {
        let row = row.map_err(syntax)?;
        let line = row.position().map_or(0, |p| p.line() as usize);
        let get = |name: &str| {
            column(name)
                .and_then(|i| row.get(i))
                .filter(|v| !v.is_empty())
        };
        let number = |name: &str| -> Result<i64, FeedError> {
            get(name).map_or(Ok(0), |v| {
                v.parse().map_err(|_| FeedError::Record {
                    file: file.to_owned(),
                    location: format!("line {line}"),
                    reason: format!("`{name}` is not a number of milliseconds: `{v}`"),
                })
            })
        };
        let context = headers
            .iter()
            .zip(row.iter())
            .filter(|(h, v)| !v.is_empty() && !KNOWN.iter().any(|k| h.eq_ignore_ascii_case(k)))
            .map(|(h, v)| (h.to_owned(), serde_json::Value::String(v.to_owned())))
            .collect();
        records.push(FeedRecord {
            indicator: row.get(indicator).unwrap_or_default().to_owned(),
            category: get("category").map(str::to_owned),
            kind: get("type").map(str::to_owned),
            context,
            tags: get("tags")
                .map(|t| t.split(';').map(|s| s.trim().to_owned()).collect())
                .unwrap_or_default(),
            exact: get("exact").is_some_and(|v| matches!(v, "true" | "1" | "yes")),
            last_seen: number("last_seen")?,
            expires_at: number("expires_at")?,
            location: Some(format!("line {line}")),
        });
    }
    Ok(ParsedFeed {
        category: None,
        confidence: None,
        retention_minutes: None,
        description: None,
        records,
    })
}
