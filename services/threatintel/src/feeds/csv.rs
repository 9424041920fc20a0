//! CSV feeds: a header row naming the columns. `indicator` and `category` are required;
//! `type`, `tags` (`;`-separated), `exact`, `last_seen` and `expires_at` are read when
//! present; every other column becomes context. Read row by row into one reused record, so a
//! feed of millions of rows is never held whole.

use std::path::Path;

use super::record::{EntrySink, FeedEntry, FeedError, Location};

/// The columns a row is read from, found once in the header.
struct Columns {
    indicator: usize,
    category: Option<usize>,
    kind: Option<usize>,
    tags: Option<usize>,
    exact: Option<usize>,
    last_seen: Option<usize>,
    expires_at: Option<usize>,
    /// (column, name) of every other column.
    context: Vec<(usize, String)>,
}

impl Columns {
    fn of(headers: &::csv::StringRecord) -> Option<Columns> {
        let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let mut columns = Columns {
            indicator: column("indicator")?,
            category: column("category"),
            kind: column("type"),
            tags: column("tags"),
            exact: column("exact"),
            last_seen: column("last_seen"),
            expires_at: column("expires_at"),
            context: Vec::new(),
        };
        let known = [
            Some(columns.indicator),
            columns.category,
            columns.kind,
            columns.tags,
            columns.exact,
            columns.last_seen,
            columns.expires_at,
        ];
        columns.context = headers
            .iter()
            .enumerate()
            .filter(|(i, _)| !known.contains(&Some(*i)))
            .map(|(i, name)| (i, name.to_owned()))
            .collect();
        Some(columns)
    }
}

pub fn read(file: &str, path: &Path, each: &mut EntrySink<'_>) -> Result<(), FeedError> {
    let syntax = |e: ::csv::Error| {
        let line = e.position().map_or(0, |p| p.line() as usize);
        let reason = e.to_string();
        match e.into_kind() {
            ::csv::ErrorKind::Io(source) => FeedError::Read {
                file: file.to_owned(),
                source,
            },
            _ => FeedError::Syntax {
                file: file.to_owned(),
                line,
                reason,
            },
        }
    };
    // Fields are trimmed as they are read: the reader's own trimming rewrites every field.
    let mut reader = ::csv::ReaderBuilder::new()
        .from_path(path)
        .map_err(syntax)?;
    let mut headers = reader.headers().map_err(syntax)?.clone();
    headers.trim();
    let columns = Columns::of(&headers).ok_or_else(|| FeedError::Syntax {
        file: file.to_owned(),
        line: 1,
        reason: "the header has no `indicator` column".to_owned(),
    })?;
    let mut row = ::csv::StringRecord::new();
    while reader.read_record(&mut row).map_err(syntax)? {
        let line = row.position().map_or(0, |p| p.line());
        let refused = |reason: String| FeedError::Record {
            file: file.to_owned(),
            location: format!("line {line}"),
            reason,
        };
        let get = |column: Option<usize>| {
            column
                .and_then(|i| row.get(i))
                .map(str::trim)
                .filter(|value| !value.is_empty())
        };
        let number = |column: Option<usize>, name: &str| -> Result<i64, FeedError> {
            get(column).map_or(Ok(0), |value| {
                value.parse().map_err(|_| {
                    refused(format!(
                        "`{name}` is not a number of milliseconds: `{value}`"
                    ))
                })
            })
        };
        // Per row, not reused: they borrow the row, which the next read overwrites.
        let context: Vec<(&str, &str)> = columns
            .context
            .iter()
            .filter_map(|(i, name)| Some((name.as_str(), get(Some(*i))?)))
            .collect();
        let tags: Vec<&str> = get(columns.tags)
            .into_iter()
            .flat_map(|t| t.split(';'))
            .map(str::trim)
            .collect();
        let entry = FeedEntry {
            location: Location::Line(line),
            indicator: row.get(columns.indicator).unwrap_or_default().trim(),
            category: get(columns.category),
            kind: get(columns.kind),
            context: &context,
            tags: &tags,
            exact: get(columns.exact).is_some_and(|v| matches!(v, "true" | "1" | "yes")),
            last_seen: number(columns.last_seen, "last_seen")?,
            expires_at: number(columns.expires_at, "expires_at")?,
        };
        each(&entry).map_err(refused)?;
    }
    Ok(())
}
