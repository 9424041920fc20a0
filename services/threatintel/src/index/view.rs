//! The indexes a lookup consults together: the feeds' (large, rebuilt on reload) and the
//! runtime one (Internal TI and false positives, small, rebuilt on every change). A
//! FalsePositive entry in either suppresses every match of the value.

use std::sync::Arc;

use super::{
    error::IndicatorError,
    model::{FALSE_POSITIVE, Indicator, IndicatorKind, Match},
    parse::parse_lookup,
    table::IndicatorIndex,
};

#[derive(Clone)]
pub struct IndexView {
    pub feeds: Arc<IndicatorIndex>,
    pub runtime: Arc<IndicatorIndex>,
}

impl IndexView {
    /// Appends every live match of `value` to `out`, none if a false positive matches.
    pub fn lookup<'a>(
        &'a self,
        value: &str,
        kind: Option<IndicatorKind>,
        now_ms: i64,
        out: &mut Vec<Match<'a>>,
    ) -> Result<(), IndicatorError> {
        let key = parse_lookup(value, kind)?;
        let start = out.len();
        self.feeds.lookup_key(&key, now_ms, out);
        self.runtime.lookup_key(&key, now_ms, out);
        if out[start..].iter().any(|m| m.supplier == FALSE_POSITIVE) {
            out.truncate(start);
        }
        Ok(())
    }

    /// Everything known about `value`: every supplier, category and context, expired and
    /// false-positive entries included.
    pub fn search(
        &self,
        value: &str,
        kind: Option<IndicatorKind>,
    ) -> Result<Vec<Indicator>, IndicatorError> {
        let key = parse_lookup(value, kind)?;
        let mut found = self.feeds.search(&key);
        found.extend(self.runtime.search(&key));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexBuilder;

    fn index(indicators: &[(&str, &str, &str)]) -> Arc<IndicatorIndex> {
        let mut builder = IndexBuilder::new([]);
        for (value, category, supplier) in indicators {
            let indicator = Indicator {
                value: (*value).into(),
                category: (*category).into(),
                supplier: (*supplier).into(),
                ..Default::default()
            };
            builder.add(&indicator).unwrap();
        }
        Arc::new(builder.build())
    }

    #[test]
    fn a_false_positive_in_either_index_suppresses_every_supplier() {
        let feeds = index(&[
            ("198.51.100.0/24", "KL_IP_Reputation", "Demo"),
            ("203.0.113.5", "KL_IP_Reputation", "Demo"),
        ]);
        let runtime = index(&[
            ("198.51.100.10", "Allowed", FALSE_POSITIVE),
            ("203.0.113.5", "KL_InternalTI_IP", "InternalTI"),
        ]);
        let view = IndexView { feeds, runtime };
        let found = |value: &str| {
            let mut out = Vec::new();
            view.lookup(value, None, 0, &mut out).unwrap();
            out.iter()
                .map(|m| m.supplier.to_owned())
                .collect::<Vec<_>>()
        };
        assert!(found("198.51.100.10").is_empty());
        assert_eq!(found("198.51.100.11"), ["Demo"]);
        assert_eq!(found("203.0.113.5"), ["Demo", "InternalTI"]);
        let everything = view.search("198.51.100.10", None).unwrap();
        assert_eq!(
            everything.len(),
            2,
            "search shows the suppressed and the suppressing entry"
        );
    }
}
