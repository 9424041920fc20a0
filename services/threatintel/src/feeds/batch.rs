//! Parsed records on their way from the thread that reads a feed to the one that files it
//! into the index. The strings of a batch's records (category, context, tags) lie back to
//! back in one buffer, so a batch costs a few allocations rather than a few per record.

use crate::index::{IndexBuilder, IndexFull, IndicatorKey, NewRecord};

use super::record::FeedEntry;

/// Records a batch carries before it is handed over.
pub const BATCH_RECORDS: usize = 4096;

struct ParsedRecord {
    key: IndicatorKey,
    pairs: u32,
    tags: u32,
    last_seen_ms: i64,
    expires_at_ms: i64,
    exact: bool,
}

#[derive(Default)]
pub struct ParsedBatch {
    text: String,
    /// Where each string in `text` ends: per record its category, its context's keys and
    /// values in turn, then its tags.
    ends: Vec<u32>,
    records: Vec<ParsedRecord>,
}

impl ParsedBatch {
    pub fn with_capacity(records: usize) -> Self {
        ParsedBatch {
            text: String::with_capacity(records * 32),
            ends: Vec::with_capacity(records * 3),
            records: Vec::with_capacity(records),
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    fn push_str(&mut self, text: &str) {
        self.text.push_str(text);
        self.ends.push(self.text.len() as u32);
    }

    pub fn push(
        &mut self,
        key: IndicatorKey,
        category: &str,
        entry: &FeedEntry<'_>,
        last_seen_ms: i64,
    ) {
        self.push_str(category);
        for (name, value) in entry.context {
            self.push_str(name);
            self.push_str(value);
        }
        for tag in entry.tags {
            self.push_str(tag);
        }
        self.records.push(ParsedRecord {
            key,
            pairs: entry.context.len() as u32,
            tags: entry.tags.len() as u32,
            last_seen_ms,
            expires_at_ms: entry.expires_at,
            exact: entry.exact,
        });
    }

    /// Files every record of the batch as `supplier`'s.
    pub fn file_into(&self, builder: &mut IndexBuilder, supplier: &str) -> Result<(), IndexFull> {
        let mut start = 0;
        let mut strings = self.ends.iter().map(|&end| {
            let text = &self.text[start..end as usize];
            start = end as usize;
            text
        });
        let mut next = move || strings.next().expect("every record's strings were pushed");
        let (mut context, mut tags) = (Vec::new(), Vec::new());
        for record in &self.records {
            let category = next();
            context.clear();
            context.extend((0..record.pairs).map(|_| (next(), next())));
            tags.clear();
            tags.extend((0..record.tags).map(|_| next()));
            builder.add_parsed(
                &record.key,
                &NewRecord {
                    category,
                    supplier,
                    context: &context,
                    tags: &tags,
                    last_seen_ms: record.last_seen_ms,
                    expires_at_ms: record.expires_at_ms,
                    exact: record.exact,
                },
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{IndexBuilder, IndexView, IndicatorIndex, parse_indicator};
    use std::sync::Arc;

    #[test]
    fn a_batch_files_every_record_with_its_strings() {
        let mut batch = ParsedBatch::with_capacity(2);
        for (value, context, tags) in [
            (
                "evil.example",
                &[("threat", "Trojan"), ("seen", "2")][..],
                &["apt"][..],
            ),
            ("192.0.2.1", &[][..], &["a", "b"][..]),
        ] {
            let entry = FeedEntry {
                indicator: value,
                context,
                tags,
                ..Default::default()
            };
            batch.push(parse_indicator(value, None).unwrap(), "C", &entry, 5);
        }
        assert_eq!(batch.len(), 2);
        let mut builder = IndexBuilder::new([]);
        batch.file_into(&mut builder, "Demo").unwrap();
        let view = IndexView {
            feeds: Arc::new(builder.build()),
            runtime: Arc::new(IndicatorIndex::empty()),
        };
        let found = view.search("evil.example", None).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].category, "C");
        assert_eq!(found[0].supplier, "Demo");
        assert_eq!(found[0].last_seen_ms, 5);
        assert_eq!(
            found[0].context,
            [
                ("threat".into(), "Trojan".into()),
                ("seen".into(), "2".into())
            ]
        );
        assert_eq!(found[0].tags, ["apt"]);
        let found = view.search("192.0.2.1", None).unwrap();
        assert_eq!(found[0].tags, ["a", "b"]);
        assert!(found[0].context.is_empty());
    }
}
