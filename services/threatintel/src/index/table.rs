//! The index proper: records in one array, each table mapping a key to the head of a chain of
//! records (one per supplier and category that gave the value). Built once by
//! [`IndexBuilder`], then read-only, so lookups need no lock.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::{
    domain::DomainTable,
    hash::HashTable,
    ip::IpTable,
    mask::MaskTable,
    model::{FALSE_POSITIVE, INTERNAL_TI, Indicator, IndicatorKind, Match, Supplier},
    parse::{IndicatorError, IndicatorKey, LookupKey, parse_indicator},
    url::UrlHost,
};

const END: u32 = u32::MAX;
const MS_PER_MINUTE: i64 = 60_000;

struct Record {
    matched: Box<str>,
    kind: IndicatorKind,
    category: u32,
    supplier: u32,
    context: Box<[(Box<str>, Box<str>)]>,
    tags: Box<[Box<str>]>,
    last_seen_ms: i64,
    expires_at_ms: i64,
    exact: bool,
    next: u32,
}

/// Counts for `Stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub by_kind: BTreeMap<&'static str, u64>,
    pub by_supplier: BTreeMap<String, u64>,
}

pub struct IndicatorIndex {
    records: Vec<Record>,
    categories: Vec<Box<str>>,
    suppliers: Vec<Supplier>,
    ips: IpTable,
    domains: DomainTable,
    urls: FxHashMap<Box<str>, u32>,
    masks: MaskTable,
    hashes: HashTable,
}

pub struct IndexBuilder {
    index: IndicatorIndex,
    category_ids: FxHashMap<Box<str>, u32>,
    supplier_ids: FxHashMap<String, u32>,
}

impl IndexBuilder {
    /// An empty index knowing `suppliers`, plus the built-in `InternalTI` and `FalsePositive`.
    pub fn new(suppliers: impl IntoIterator<Item = Supplier>) -> Self {
        let mut builder = IndexBuilder {
            index: IndicatorIndex {
                records: Vec::new(),
                categories: Vec::new(),
                suppliers: Vec::new(),
                ips: IpTable::default(),
                domains: DomainTable::default(),
                urls: FxHashMap::default(),
                masks: MaskTable::default(),
                hashes: HashTable::default(),
            },
            category_ids: FxHashMap::default(),
            supplier_ids: FxHashMap::default(),
        };
        for supplier in [Supplier::new(INTERNAL_TI), Supplier::new(FALSE_POSITIVE)]
            .into_iter()
            .chain(suppliers)
        {
            builder.upsert_supplier(supplier);
        }
        builder
    }

    pub fn upsert_supplier(&mut self, supplier: Supplier) -> u32 {
        match self.supplier_ids.get(&supplier.name) {
            Some(&id) => {
                self.index.suppliers[id as usize] = supplier;
                id
            }
            None => {
                let id = self.index.suppliers.len() as u32;
                self.supplier_ids.insert(supplier.name.clone(), id);
                self.index.suppliers.push(supplier);
                id
            }
        }
    }

    /// Files `indicator`; the same value again from the same supplier and category replaces
    /// the earlier record.
    pub fn add(&mut self, indicator: &Indicator) -> Result<(), IndicatorError> {
        let key = parse_indicator(&indicator.value, indicator.kind)?;
        self.add_parsed(&key, indicator);
        Ok(())
    }

    /// Files `indicator` under `key`, which [`parse_indicator`] made of it: callers that must
    /// check a whole feed before adding any of it parse each value once.
    pub fn add_parsed(&mut self, key: &IndicatorKey, indicator: &Indicator) {
        let supplier = match self.supplier_ids.get(&indicator.supplier) {
            Some(&id) => id,
            None => self.upsert_supplier(Supplier::new(&indicator.supplier)),
        };
        let category = match self.category_ids.get(indicator.category.as_str()) {
            Some(&id) => id,
            None => {
                let id = self.index.categories.len() as u32;
                self.index
                    .categories
                    .push(indicator.category.as_str().into());
                self.category_ids
                    .insert(indicator.category.as_str().into(), id);
                id
            }
        };
        let index = &mut self.index;
        let (kind, matched, head) = match key {
            IndicatorKey::Ip(net) => {
                // An address is shown without its /32.
                let shown = if net.prefix_len() == net.max_prefix_len() {
                    net.addr().to_string()
                } else {
                    net.to_string()
                };
                (IndicatorKind::Ip, shown, index.ips.head_mut(*net, END))
            }
            IndicatorKey::Url(url) => (
                IndicatorKind::Url,
                url.text.clone(),
                index.urls.entry(url.text.as_str().into()).or_insert(END),
            ),
            IndicatorKey::UrlMask(mask) => (
                IndicatorKind::Url,
                mask.pattern.clone(),
                index.masks.head_mut(mask, END),
            ),
            IndicatorKey::Domain(domain) => (
                IndicatorKind::Domain,
                domain.clone(),
                index.domains.head_mut(domain, END),
            ),
            IndicatorKey::Hash(hash) => (
                IndicatorKind::Hash,
                indicator.value.trim().to_ascii_lowercase(),
                index.hashes.head_mut(*hash, END),
            ),
        };
        let record = Record {
            matched: matched.into(),
            kind,
            category,
            supplier,
            context: indicator
                .context
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect(),
            tags: indicator.tags.iter().map(|t| t.as_str().into()).collect(),
            last_seen_ms: indicator.last_seen_ms,
            expires_at_ms: indicator.expires_at_ms,
            exact: indicator.exact,
            next: END,
        };
        let mut at = *head;
        while at != END {
            let existing = &mut index.records[at as usize];
            if existing.supplier == supplier && existing.category == category {
                let next = existing.next;
                *existing = Record { next, ..record };
                return;
            }
            at = existing.next;
        }
        let id = index.records.len() as u32;
        let previous = std::mem::replace(head, id);
        index.records.push(Record {
            next: previous,
            ..record
        });
    }

    pub fn build(self) -> IndicatorIndex {
        self.index
    }
}

impl IndicatorIndex {
    pub fn empty() -> Self {
        IndexBuilder::new([]).build()
    }

    /// Appends every live match of `value` to `out`, FalsePositive entries included (the
    /// caller, who may combine indexes, suppresses). `kind` `None` tells it from the shape.
    #[cfg(test)]
    pub fn lookup<'a>(
        &'a self,
        value: &str,
        kind: Option<IndicatorKind>,
        now_ms: i64,
        out: &mut Vec<Match<'a>>,
    ) -> Result<(), IndicatorError> {
        self.lookup_key(&super::parse::parse_lookup(value, kind)?, now_ms, out);
        Ok(())
    }

    pub fn lookup_key<'a>(&'a self, key: &LookupKey, now_ms: i64, out: &mut Vec<Match<'a>>) {
        self.visit(key, |head, parent_domain| {
            self.collect(head, parent_domain, now_ms, out)
        });
    }

    /// Everything known about `key` in this index, expired and FalsePositive entries too.
    pub fn search(&self, key: &LookupKey) -> Vec<Indicator> {
        let mut found = Vec::new();
        self.visit(key, |mut at, parent_domain| {
            while at != END {
                let record = &self.records[at as usize];
                at = record.next;
                if !(parent_domain && record.exact) {
                    found.push(self.indicator_of(record));
                }
            }
        });
        found
    }

    /// Calls `found(head, is_parent_domain)` for every record chain that may match `key`.
    fn visit(&self, key: &LookupKey, mut found: impl FnMut(u32, bool)) {
        match key {
            LookupKey::Ip(ip) => self.ips.for_each_match(*ip, |head| found(head, false)),
            LookupKey::Domain(domain) => {
                self.domains.for_each_match(domain, &mut found);
                if let Some(&head) = self.urls.get(domain.as_str()) {
                    found(head, false);
                }
            }
            LookupKey::Hash(hash) => {
                if let Some(head) = self.hashes.get(*hash) {
                    found(head, false);
                }
            }
            LookupKey::Url(url) => {
                if let Some(&head) = self.urls.get(url.text.as_str()) {
                    found(head, false);
                }
                match &url.host {
                    UrlHost::Domain(host) => {
                        self.masks
                            .for_each_match(host, &url.text, |head| found(head, false));
                        self.domains.for_each_match(host, &mut found);
                    }
                    UrlHost::Ip(ip) => {
                        self.masks
                            .for_each_match(&ip.to_string(), &url.text, |head| found(head, false));
                        self.ips.for_each_match(*ip, |head| found(head, false));
                    }
                }
            }
        }
    }

    fn indicator_of(&self, record: &Record) -> Indicator {
        Indicator {
            value: record.matched.to_string(),
            kind: Some(record.kind),
            category: self.categories[record.category as usize].to_string(),
            supplier: self.suppliers[record.supplier as usize].name.clone(),
            context: record
                .context
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tags: record.tags.iter().map(|t| t.to_string()).collect(),
            last_seen_ms: record.last_seen_ms,
            expires_at_ms: record.expires_at_ms,
            exact: record.exact,
        }
    }

    fn collect<'a>(
        &'a self,
        mut at: u32,
        parent_domain: bool,
        now_ms: i64,
        out: &mut Vec<Match<'a>>,
    ) {
        while at != END {
            let record = &self.records[at as usize];
            at = record.next;
            if (parent_domain && record.exact) || !self.is_live(record, now_ms) {
                continue;
            }
            out.push(Match {
                kind: record.kind,
                category: &self.categories[record.category as usize],
                matched: &record.matched,
                supplier: &self.suppliers[record.supplier as usize].name,
                context: &record.context,
            });
        }
    }

    fn is_live(&self, record: &Record, now_ms: i64) -> bool {
        if record.expires_at_ms != 0 && record.expires_at_ms <= now_ms {
            return false;
        }
        let retention = self.suppliers[record.supplier as usize].retention_minutes;
        retention == 0
            || record.last_seen_ms == 0
            || record.last_seen_ms + i64::from(retention) * MS_PER_MINUTE > now_ms
    }

    /// The indicators of one supplier as the index holds them (normalized), to carry them
    /// into a new index when that supplier's feed fails to load.
    pub fn indicators_of(&self, supplier: &str) -> Vec<Indicator> {
        self.records
            .iter()
            .filter(|r| self.suppliers[r.supplier as usize].name == supplier)
            .map(|r| self.indicator_of(r))
            .collect()
    }

    pub fn suppliers(&self) -> &[Supplier] {
        &self.suppliers
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn stats(&self) -> IndexStats {
        let mut stats = IndexStats::default();
        for record in &self.records {
            *stats.by_kind.entry(record.kind.name()).or_default() += 1;
            *stats
                .by_supplier
                .entry(self.suppliers[record.supplier as usize].name.clone())
                .or_default() += 1;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn indicator(value: &str, category: &str, supplier: &str) -> Indicator {
        Indicator {
            value: value.into(),
            category: category.into(),
            supplier: supplier.into(),
            ..Default::default()
        }
    }

    fn index(indicators: &[Indicator]) -> IndicatorIndex {
        let mut builder = IndexBuilder::new([Supplier {
            retention_minutes: 60,
            ..Supplier::new("ShortLived")
        }]);
        for indicator in indicators {
            builder.add(indicator).unwrap();
        }
        builder.build()
    }

    /// (matched indicator, category, supplier) of every match, sorted.
    fn lookup(index: &IndicatorIndex, value: &str) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        index.lookup(value, None, NOW, &mut out).unwrap();
        let mut found: Vec<_> = out
            .iter()
            .map(|m| {
                (
                    m.matched.to_owned(),
                    m.category.to_owned(),
                    m.supplier.to_owned(),
                )
            })
            .collect();
        found.sort();
        found
    }

    fn m(matched: &str, category: &str, supplier: &str) -> (String, String, String) {
        (matched.into(), category.into(), supplier.into())
    }

    #[test]
    fn a_url_lookup_checks_the_url_its_masks_its_domain_and_its_ip() {
        let index = index(&[
            indicator("http://fakess123.nu", "KL_Malicious_URL", "Demo"),
            indicator("example.com/testpage/*", "KL_Phishing_URL", "Demo"),
            indicator("evil.com", "KL_BotnetCnC_URL", "Demo"),
            indicator("192.0.2.0/24", "KL_IP_Reputation", "Demo"),
        ]);
        assert_eq!(
            lookup(&index, "https://www.fakess123.nu/"),
            vec![m("fakess123.nu", "KL_Malicious_URL", "Demo")]
        );
        assert_eq!(
            lookup(&index, "http://example.com/testpage/a.html"),
            vec![m("example.com/testpage/*", "KL_Phishing_URL", "Demo")]
        );
        assert_eq!(
            lookup(&index, "http://cdn.evil.com/x.js"),
            vec![m("evil.com", "KL_BotnetCnC_URL", "Demo")]
        );
        assert_eq!(
            lookup(&index, "http://192.0.2.7:8080/a"),
            vec![m("192.0.2.0/24", "KL_IP_Reputation", "Demo")]
        );
        assert_eq!(lookup(&index, "http://example.com/other"), vec![]);
    }

    #[test]
    fn exact_domains_do_not_match_subdomains() {
        let index = index(&[Indicator {
            exact: true,
            ..indicator("evil.com", "C", "Demo")
        }]);
        assert_eq!(lookup(&index, "evil.com").len(), 1);
        assert_eq!(lookup(&index, "a.evil.com"), vec![]);
    }

    #[test]
    fn every_supplier_answers_and_a_repeat_replaces() {
        let mut updated = indicator(
            "D41D8CD98F00B204E9800998ECF8427E",
            "KL_Malicious_Hash_MD5",
            "A",
        );
        updated.context = vec![("threat".into(), "new".into())];
        let index = index(&[
            indicator(
                "d41d8cd98f00b204e9800998ecf8427e",
                "KL_Malicious_Hash_MD5",
                "A",
            ),
            indicator(
                "d41d8cd98f00b204e9800998ecf8427e",
                "KL_InternalTI_Hash_MD5",
                INTERNAL_TI,
            ),
            updated,
        ]);
        assert_eq!(
            index.len(),
            2,
            "the repeat from A replaced its first record"
        );
        let mut out = Vec::new();
        index
            .lookup("d41d8cd98f00b204e9800998ecf8427e", None, NOW, &mut out)
            .unwrap();
        let from_a = out.iter().find(|m| m.supplier == "A").unwrap();
        assert_eq!(from_a.context, &[("threat".into(), "new".into())]);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn expired_and_retired_indicators_stop_matching() {
        let index = index(&[
            Indicator {
                expires_at_ms: NOW - 1,
                ..indicator("expired.example", "C", "Demo")
            },
            Indicator {
                expires_at_ms: NOW + 1,
                ..indicator("fresh.example", "C", "Demo")
            },
            Indicator {
                last_seen_ms: NOW - 61 * 60_000,
                ..indicator("stale.example", "C", "ShortLived")
            },
            Indicator {
                last_seen_ms: NOW - 59 * 60_000,
                ..indicator("recent.example", "C", "ShortLived")
            },
        ]);
        assert_eq!(lookup(&index, "expired.example"), vec![]);
        assert_eq!(lookup(&index, "fresh.example").len(), 1);
        assert_eq!(lookup(&index, "stale.example"), vec![]);
        assert_eq!(lookup(&index, "recent.example").len(), 1);
    }

    #[test]
    fn bad_lookups_are_errors_and_no_match_is_empty() {
        let index = index(&[]);
        let mut out = Vec::new();
        assert!(index.lookup("", None, NOW, &mut out).is_err());
        assert!(
            index
                .lookup("zz", Some(IndicatorKind::Hash), NOW, &mut out)
                .is_err()
        );
        index.lookup("192.0.2.1", None, NOW, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn stats_count_by_kind_and_supplier() {
        let index = index(&[
            indicator("192.0.2.1", "C", "A"),
            indicator("a.example", "C", "A"),
            indicator("b.example", "C", "B"),
        ]);
        let stats = index.stats();
        assert_eq!(stats.by_kind.get("ip"), Some(&1));
        assert_eq!(stats.by_kind.get("domain"), Some(&2));
        assert_eq!(stats.by_supplier.get("A"), Some(&2));
    }
}
