//! Loading the feed directory into a new index. Each `<Supplier>.json` or `<Supplier>.csv`
//! is one supplier's feed. A feed is checked whole before any of it enters the index; one
//! that fails keeps the records it had in the previous index and is reported by file and line.

use std::path::Path;

use crate::index::{IndexBuilder, Indicator, IndicatorIndex, Supplier, parse_indicator};

use super::{
    csv,
    json::{self, ParsedFeed},
    record::FeedError,
};

/// How one feed file fared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedReport {
    pub file: String,
    pub supplier: String,
    /// Records now in the index for this supplier.
    pub indicators: u64,
    /// Why the file was not (re)loaded; its previous records were kept.
    pub error: Option<String>,
}

/// A new index holding every feed in `dir`, and a report per feed file.
pub fn load_feeds(
    dir: &Path,
    previous: &IndicatorIndex,
    now_ms: i64,
) -> (IndexBuilder, Vec<FeedReport>) {
    let mut builder = IndexBuilder::new(previous.suppliers().iter().cloned());
    let mut reports = Vec::new();
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(error) => {
            reports.push(FeedReport {
                file: dir.display().to_string(),
                supplier: String::new(),
                indicators: 0,
                error: Some(format!("reading the feed directory: {error}")),
            });
            return (builder, reports);
        }
    };
    files.sort();
    for path in files {
        let (Some(stem), Some(extension)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|e| e.to_str()),
        ) else {
            continue;
        };
        if !matches!(extension, "json" | "csv") {
            continue;
        }
        let file = path.display().to_string();
        let supplier = stem.to_owned();
        let report = match load_feed(&path, &file, &supplier, extension, now_ms, &mut builder) {
            Ok(count) => FeedReport {
                file,
                supplier,
                indicators: count,
                error: None,
            },
            Err(error) => {
                let kept = previous.indicators_of(&supplier);
                for indicator in &kept {
                    // These were valid in the previous index, normalized; they parse again.
                    let _ = builder.add(indicator);
                }
                FeedReport {
                    file,
                    supplier,
                    indicators: kept.len() as u64,
                    error: Some(error.to_string()),
                }
            }
        };
        reports.push(report);
    }
    (builder, reports)
}

fn load_feed(
    path: &Path,
    file: &str,
    supplier: &str,
    extension: &str,
    now_ms: i64,
    builder: &mut IndexBuilder,
) -> Result<u64, FeedError> {
    let text = std::fs::read_to_string(path).map_err(|source| FeedError::Read {
        file: file.to_owned(),
        source,
    })?;
    let feed: ParsedFeed = if extension == "csv" {
        csv::parse(file, &text)?
    } else {
        json::parse(file, &text)?
    };
    let mut checked = Vec::with_capacity(feed.records.len());
    for (i, record) in feed.records.into_iter().enumerate() {
        let location = record
            .location
            .clone()
            .unwrap_or_else(|| format!("record {}", i + 1));
        let fail = |reason: String| FeedError::Record {
            file: file.to_owned(),
            location: location.clone(),
            reason,
        };
        let indicator: Indicator = record
            .into_indicator(supplier, feed.category.as_deref(), now_ms)
            .map_err(fail)?;
        let key =
            parse_indicator(&indicator.value, indicator.kind).map_err(|e| fail(e.to_string()))?;
        checked.push((key, indicator));
    }
    let defaults = Supplier::new(supplier);
    builder.upsert_supplier(Supplier {
        confidence: feed.confidence.unwrap_or(defaults.confidence),
        retention_minutes: feed.retention_minutes.unwrap_or(defaults.retention_minutes),
        description: feed.description.unwrap_or_default(),
        ..defaults
    });
    for (key, indicator) in &checked {
        builder.add_parsed(key, indicator);
    }
    Ok(checked.len() as u64)
}
