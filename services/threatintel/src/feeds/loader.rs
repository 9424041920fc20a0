//! Loading the feed directory into a new index. Each `<Supplier>.json`, `<Supplier>.csv`,
//! `<Supplier>.stix.json` (a STIX 2.1 bundle) or `<Supplier>.misp/` (a MISP feed's folder)
//! is one supplier's feed. A feed enters the index whole or not at all: one that fails keeps
//! the records it had in the previous index and is reported by file and line.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::mpsc::{self, SyncSender},
};

use crate::index::{
    IndexBuilder, IndicatorError, IndicatorIndex, IndicatorKey, Supplier, parse_indicator,
};

use super::{
    FeedOptions,
    batch::{BATCH_RECORDS, ParsedBatch},
    csv,
    json::{self, FeedSettings},
    misp,
    record::{FeedEntry, FeedError, Location, SkipReason, parse_kind},
    stix,
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
    /// Records left out of a loaded feed, and the first few of them by file and place.
    pub skipped: Skipped,
}

/// Records of a feed that are not indicators of the kind they claim (a URL with another
/// scheme or no host), or that no lookup could match (a STIX pattern joining comparisons
/// with `AND`, a revoked indicator), are left out and counted by reason; the rest loads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    pub count: u64,
    /// How many for each reason ([`SkipReason::key`]).
    pub by_reason: BTreeMap<&'static str, u64>,
    /// `file: line N: why`, for the first [`SKIPPED_SHOWN`].
    pub first: Vec<String>,
}

/// Skipped records named in a report; the rest are counted.
pub const SKIPPED_SHOWN: usize = 10;

impl Skipped {
    pub(super) fn add(&mut self, file: &str, location: Location, reason: SkipReason, why: &str) {
        self.count += 1;
        *self.by_reason.entry(reason.key()).or_default() += 1;
        if self.first.len() < SKIPPED_SHOWN {
            self.first.push(format!("{file}: {location}: {why}"));
        }
    }

    fn absorb(&mut self, other: Skipped) {
        self.count += other.count;
        for (reason, count) in other.by_reason {
            *self.by_reason.entry(reason).or_default() += count;
        }
        let room = SKIPPED_SHOWN.saturating_sub(self.first.len());
        self.first.extend(other.first.into_iter().take(room));
    }
}

/// A feed file and the supplier it speaks for.
struct FeedFile {
    path: PathBuf,
    /// The path as reports show it.
    file: String,
    supplier: String,
    format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Stix,
    Misp,
}

/// The feed files of `dir`, in name order.
fn feed_files(dir: &Path) -> std::io::Result<Vec<FeedFile>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            let (supplier, format) = if let Some(supplier) = name.strip_suffix(".misp") {
                (supplier, Format::Misp)
            } else if let Some(supplier) = name.strip_suffix(".stix.json") {
                (supplier, Format::Stix)
            } else if let Some(supplier) = name.strip_suffix(".json") {
                (supplier, Format::Json)
            } else {
                (name.strip_suffix(".csv")?, Format::Csv)
            };
            let supplier = supplier.to_owned();
            Some(FeedFile {
                file: path.display().to_string(),
                path,
                supplier,
                format,
            })
        })
        .collect())
}

/// A new index holding every feed in `dir` (and in `options.remote_dir`, where the pollers of
/// remote suppliers keep what they fetched), and a report per feed file.
pub fn load_feeds(
    dir: &Path,
    previous: &IndicatorIndex,
    now_ms: i64,
    options: &FeedOptions,
) -> (IndexBuilder, Vec<FeedReport>) {
    let new_builder = || IndexBuilder::new(previous.suppliers().iter().cloned());
    let remote = options.remote_dir.as_deref().map(|remote| {
        // No folder yet: no remote supplier has fetched anything.
        feed_files(remote).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(Vec::new()),
            _ => Err(e),
        })
    });
    let files = match feed_files(dir).and_then(|mut files| {
        files.extend(remote.transpose()?.into_iter().flatten());
        Ok(files)
    }) {
        Ok(files) => files,
        Err(error) => {
            let report = FeedReport {
                file: dir.display().to_string(),
                supplier: String::new(),
                indicators: 0,
                error: Some(format!("reading the feed directory: {error}")),
                skipped: Skipped::default(),
            };
            return (new_builder(), vec![report]);
        }
    };
    // Feeds are read straight into the index, never held whole. One that fails part-way has
    // already filed some records; rather than undo them, the load starts over without that
    // feed, which happens at most once per failing feed.
    let mut failed: BTreeMap<&Path, String> = BTreeMap::new();
    let feed_bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(&f.path).ok())
        .map(|m| m.len())
        .sum();
    'attempt: loop {
        let mut builder = new_builder();
        // A record takes a line of at least this much in any feed format worth loading.
        const MIN_RECORD_BYTES: u64 = 24;
        builder.reserve(
            (feed_bytes / MIN_RECORD_BYTES) as usize,
            feed_bytes as usize,
        );
        let mut reports = Vec::with_capacity(files.len());
        for feed in &files {
            let error = match failed.get(feed.path.as_path()) {
                Some(error) => error.clone(),
                None => {
                    let before = builder.additions();
                    match load_feed(feed, now_ms, options, &mut builder) {
                        Ok((count, skipped)) => {
                            reports.push(FeedReport {
                                file: feed.file.clone(),
                                supplier: feed.supplier.clone(),
                                indicators: count,
                                error: None,
                                skipped,
                            });
                            continue;
                        }
                        Err(error) => {
                            let error = error.to_string();
                            failed.insert(&feed.path, error.clone());
                            if builder.additions() != before {
                                tracing::warn!(%error, "a feed failed part-way; loading again without it");
                                continue 'attempt;
                            }
                            error
                        }
                    }
                }
            };
            let kept = previous.indicators_of(&feed.supplier);
            for indicator in &kept {
                // These were valid in the previous index, normalized; they parse again.
                let _ = builder.add(indicator);
            }
            reports.push(FeedReport {
                file: feed.file.clone(),
                supplier: feed.supplier.clone(),
                indicators: kept.len() as u64,
                error: Some(error),
                skipped: Skipped::default(),
            });
        }
        return (builder, reports);
    }
}

/// Files every record of `feed`; how many it had, and which it skipped. A second thread
/// reads and parses the feed while this one files what it parsed: the two halves cost about
/// the same, and the index, being one structure, is filled by one thread.
fn load_feed(
    feed: &FeedFile,
    now_ms: i64,
    options: &FeedOptions,
    builder: &mut IndexBuilder,
) -> Result<(u64, Skipped), FeedError> {
    let (sender, batches) = mpsc::sync_channel(BATCHES_IN_FLIGHT);
    let (read, filed) = std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("feed-reader".to_owned())
            .spawn_scoped(scope, || read_feed(feed, now_ms, options, sender))
            .expect("starting a feed reader thread");
        let mut filed = Ok(());
        for batch in batches {
            filed = batch.file_into(builder, &feed.supplier);
            if filed.is_err() {
                // Dropping the receiver stops the reader at its next batch.
                break;
            }
        }
        let read = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (read, filed)
    });
    filed.map_err(|full| FeedError::Record {
        file: feed.file.clone(),
        location: "index".to_owned(),
        reason: full.to_string(),
    })?;
    let (count, skipped, settings) = read?;
    let defaults = Supplier::new(&feed.supplier);
    builder.upsert_supplier(Supplier {
        confidence: settings.confidence.unwrap_or(defaults.confidence),
        retention_minutes: settings
            .retention_minutes
            .unwrap_or(defaults.retention_minutes),
        description: settings.description.unwrap_or_default(),
        ..defaults
    });
    Ok((count, skipped))
}

/// Batches a reader may get ahead of the filing.
const BATCHES_IN_FLIGHT: usize = 4;

/// Reads and parses `feed`, sending its records in batches; how many it read, which it
/// skipped, and the supplier settings the feed gives.
fn read_feed(
    feed: &FeedFile,
    now_ms: i64,
    options: &FeedOptions,
    batches: SyncSender<ParsedBatch>,
) -> Result<(u64, Skipped, FeedSettings), FeedError> {
    let file = feed.file.as_str();
    let mut count = 0u64;
    let mut skipped = Skipped::default();
    let mut batch = ParsedBatch::with_capacity(BATCH_RECORDS);
    let mut parse = |default_category: Option<&str>, entry: &FeedEntry<'_>| {
        // STIX and MISP values come from producers whose checks are looser than ours (an
        // `ipv4-addr` of `999.1.1.1` is a valid pattern): one that is no indicator of its
        // kind is the feed's bad record, not a broken feed.
        let lenient = matches!(feed.format, Format::Stix | Format::Misp);
        let (key, category) = match parse_entry(default_category, entry, lenient) {
            Ok(parsed) => parsed,
            Err(Refused::Skip(reason, why)) => {
                skipped.add(file, entry.location, reason, &why);
                return Ok(());
            }
            Err(Refused::Fail(reason)) => return Err(reason),
        };
        let last_seen_ms = if entry.last_seen == 0 {
            now_ms
        } else {
            entry.last_seen
        };
        batch.push(key, category, entry, last_seen_ms);
        count += 1;
        if batch.len() == BATCH_RECORDS {
            let full = std::mem::replace(&mut batch, ParsedBatch::with_capacity(BATCH_RECORDS));
            batches
                .send(full)
                .map_err(|_| "the load was stopped".to_owned())?;
        }
        Ok(())
    };
    let read_whole = || {
        std::fs::read(&feed.path).map_err(|source| FeedError::Read {
            file: file.to_owned(),
            source,
        })
    };
    let (settings, skipped_in_bundle) = match feed.format {
        Format::Csv => {
            csv::read(file, &feed.path, &mut |entry| parse(None, entry))?;
            (FeedSettings::default(), Skipped::default())
        }
        Format::Json => {
            let text = read_whole()?;
            let settings = json::read_settings(file, &text)?;
            let category = settings.category.as_deref();
            json::read_records(file, &text, &mut |entry| parse(category, entry))?;
            (settings, Skipped::default())
        }
        Format::Stix => {
            let text = read_whole()?;
            let categories = &options.categories;
            let skipped = stix::read_bundle(file, &text, now_ms, categories, &mut |entry| {
                parse(None, entry)
            })?;
            (FeedSettings::default(), skipped)
        }
        Format::Misp => {
            let categories = &options.categories;
            let skipped = misp::read_folder(file, &feed.path, categories, &mut |entry| {
                parse(None, entry)
            })?;
            (FeedSettings::default(), skipped)
        }
    };
    skipped.absorb(skipped_in_bundle);
    // A closed channel here means the filing stopped, and it reports why.
    let _ = batches.send(batch);
    Ok((count, skipped, settings))
}

/// Why a record is not filed: skipped (the feed loads without it) or failing the feed.
enum Refused {
    Skip(SkipReason, String),
    Fail(String),
}

/// Where a record is filed and under which category; `Err` says why it cannot be.
/// `lenient`: a value that is no indicator of its kind is skipped rather than failing.
fn parse_entry<'a>(
    default_category: Option<&'a str>,
    entry: &FeedEntry<'a>,
    lenient: bool,
) -> Result<(IndicatorKey, &'a str), Refused> {
    let category = entry
        .category
        .or(default_category)
        .ok_or_else(|| Refused::Fail("no category (give one per record or per file)".into()))?;
    let kind = parse_kind(entry.kind.unwrap_or_default()).map_err(Refused::Fail)?;
    let key = parse_indicator(entry.indicator, kind).map_err(|e| match e {
        // Feeds written for URL parsers of other rules hold such records; they are no
        // indicator of ours, and no reason to refuse the feed's other records.
        IndicatorError::NotWebUrl { .. } => Refused::Skip(SkipReason::NotWebUrl, e.to_string()),
        e if lenient => Refused::Skip(SkipReason::InvalidValue, e.to_string()),
        e => Refused::Fail(e.to_string()),
    })?;
    Ok((key, category))
}
