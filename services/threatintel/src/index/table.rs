//! The index proper. Every distinct value is a key: its text in the arena and the head of
//! its chain of records, one per supplier and category that gave it. The tables map values
//! to keys. Built once by [`IndexBuilder`], then read-only, so lookups need no lock.
//!
//! Memory is what bounds how many indicators one process holds, so a record is 40 bytes of
//! numbers and offsets, and all text (values, context, tags) lives in one arena.

use std::{collections::BTreeMap, io::Write};

use rustc_hash::FxHashMap;

use super::{
    arena::{Arena, IndexFull},
    context::ContextKeys,
    domain::DomainTable,
    error::IndicatorError,
    hash::HashTable,
    ip::IpTable,
    mask::MaskTable,
    model::{FALSE_POSITIVE, INTERNAL_TI, Indicator, IndicatorKind, Match, Supplier},
    parse::{IndicatorKey, LookupHost, LookupKey, parse_indicator},
    text_table::TextTable,
};

const END: u32 = u32::MAX;
const MS_PER_MINUTE: i64 = 60_000;

/// A distinct value: its text as shown when matched, and its newest record.
struct Key {
    text: u32,
    head: u32,
}

struct Record {
    key: u32,
    /// The record filed under the same key before this one.
    next: u32,
    category: u32,
    supplier: u32,
    /// Context and tags in the arena.
    context: u32,
    kind: IndicatorKind,
    exact: bool,
    last_seen_ms: i64,
    expires_at_ms: i64,
}

/// What [`IndexBuilder::add_parsed`] files under a key: an indicator's fields, borrowed, so a
/// feed loader need not allocate per record.
#[derive(Clone, Copy, Debug, Default)]
pub struct NewRecord<'a> {
    pub category: &'a str,
    pub supplier: &'a str,
    pub context: &'a [(&'a str, &'a str)],
    pub tags: &'a [&'a str],
    pub last_seen_ms: i64,
    pub expires_at_ms: i64,
    pub exact: bool,
}

/// Counts for `Stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub by_kind: BTreeMap<&'static str, u64>,
    pub by_supplier: BTreeMap<String, u64>,
}

pub struct IndicatorIndex {
    arena: Arena,
    keys: Vec<Key>,
    records: Vec<Record>,
    categories: Vec<Box<str>>,
    suppliers: Vec<Supplier>,
    context_keys: ContextKeys,
    ips: IpTable,
    domains: DomainTable,
    urls: TextTable,
    masks: MaskTable,
    hashes: HashTable,
}

pub struct IndexBuilder {
    index: IndicatorIndex,
    /// Records filed so far, replacements included.
    additions: u64,
    category_ids: FxHashMap<Box<str>, u32>,
    supplier_ids: FxHashMap<String, u32>,
}

fn new_key(keys: &mut Vec<Key>, text: u32) -> u32 {
    let id = keys.len() as u32;
    keys.push(Key { text, head: END });
    id
}

impl IndexBuilder {
    /// An empty index knowing `suppliers`, plus the built-in `InternalTI` and `FalsePositive`.
    pub fn new(suppliers: impl IntoIterator<Item = Supplier>) -> Self {
        let mut builder = IndexBuilder {
            index: IndicatorIndex {
                arena: Arena::default(),
                keys: Vec::new(),
                records: Vec::new(),
                categories: Vec::new(),
                suppliers: Vec::new(),
                context_keys: ContextKeys::default(),
                ips: IpTable::default(),
                domains: DomainTable::default(),
                urls: TextTable::default(),
                masks: MaskTable::default(),
                hashes: HashTable::default(),
            },
            additions: 0,
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
        let context: Vec<(&str, &str)> = indicator
            .context
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let tags: Vec<&str> = indicator.tags.iter().map(String::as_str).collect();
        self.add_parsed(
            &key,
            &NewRecord {
                category: &indicator.category,
                supplier: &indicator.supplier,
                context: &context,
                tags: &tags,
                last_seen_ms: indicator.last_seen_ms,
                expires_at_ms: indicator.expires_at_ms,
                exact: indicator.exact,
            },
        )?;
        Ok(())
    }

    /// Files `new` under `key`, which [`parse_indicator`] made of the indicator's value.
    pub fn add_parsed(&mut self, key: &IndicatorKey, new: &NewRecord<'_>) -> Result<(), IndexFull> {
        let supplier = match self.supplier_ids.get(new.supplier) {
            Some(&id) => id,
            None => self.upsert_supplier(Supplier::new(new.supplier)),
        };
        let category = match self.category_ids.get(new.category) {
            Some(&id) => id,
            None => {
                let id = self.index.categories.len() as u32;
                self.index.categories.push(new.category.into());
                self.category_ids.insert(new.category.into(), id);
                id
            }
        };
        self.additions += 1;
        let index = &mut self.index;
        let key_id = index.key_id(key)?;
        let context = index.context_keys.write(
            &mut index.arena,
            new.context.iter().copied(),
            new.tags.iter().copied(),
        )?;
        let record = Record {
            key: key_id,
            next: END,
            category,
            supplier,
            context,
            kind: key.kind(),
            exact: new.exact,
            last_seen_ms: new.last_seen_ms,
            expires_at_ms: new.expires_at_ms,
        };
        let head = &mut index.keys[key_id as usize].head;
        let mut at = *head;
        while at != END {
            let existing = &mut index.records[at as usize];
            if existing.supplier == supplier && existing.category == category {
                *existing = Record {
                    next: existing.next,
                    ..record
                };
                return Ok(());
            }
            at = existing.next;
        }
        let id = index.records.len() as u32;
        index.records.push(Record {
            next: std::mem::replace(head, id),
            ..record
        });
        Ok(())
    }

    /// Records filed so far, replacements included: whether a failed feed filed any.
    pub fn additions(&self) -> u64 {
        self.additions
    }

    /// Room for about `records` records whose text takes `text_bytes`, so that loading
    /// millions of them does not copy the index over and over as it doubles. Generous is
    /// cheap: capacity never written to is address space, not memory.
    pub fn reserve(&mut self, records: usize, text_bytes: usize) {
        let index = &mut self.index;
        index.records.reserve(records);
        index.keys.reserve(records);
        index.arena.reserve(text_bytes);
    }

    /// The finished index, its tables trimmed to what they hold. The records, keys and
    /// arena keep their capacity: trimming would copy them, and what was never written to
    /// was never made resident.
    pub fn build(mut self) -> IndicatorIndex {
        let index = &mut self.index;
        index.ips.shrink_to_fit();
        index.domains.shrink_to_fit();
        index.urls.shrink_to_fit();
        index.masks.shrink_to_fit();
        index.hashes.shrink_to_fit();
        self.index
    }
}

impl IndicatorIndex {
    pub fn empty() -> Self {
        IndexBuilder::new([]).build()
    }

    fn key_text(&self, key: u32) -> &str {
        self.arena.str_at(self.keys[key as usize].text)
    }

    /// The key `key` is filed under, made if new.
    fn key_id(&mut self, key: &IndicatorKey) -> Result<u32, IndexFull> {
        let IndicatorIndex {
            arena,
            keys,
            ips,
            domains,
            urls,
            masks,
            hashes,
            ..
        } = self;
        match key {
            // An address is shown without its /32.
            IndicatorKey::Ip(net) if net.prefix_len() == net.max_prefix_len() => {
                ips.key_id(*net, || Ok(new_key(keys, arena.push_display(net.addr())?)))
            }
            IndicatorKey::Ip(net) => {
                ips.key_id(*net, || Ok(new_key(keys, arena.push_display(net)?)))
            }
            IndicatorKey::Hash(hash) => hashes.key_id(*hash, || {
                let text = arena.push_str(hash.write_hex(&mut [0; 64]))?;
                Ok(new_key(keys, text))
            }),
            IndicatorKey::UrlMask(mask) => masks.key_id(mask, arena, |text| new_key(keys, text)),
            IndicatorKey::Url(url) => {
                match urls.find(&url.text, |k| arena.bytes_at(keys[k as usize].text)) {
                    Ok(found) => Ok(found),
                    Err(absent) => {
                        let id = new_key(keys, arena.push_str(&url.text)?);
                        urls.insert(absent, id);
                        Ok(id)
                    }
                }
            }
            IndicatorKey::Domain(domain) => {
                match domains.find(domain, |k| arena.bytes_at(keys[k as usize].text)) {
                    Ok(found) => Ok(found),
                    Err(absent) => {
                        let id = new_key(keys, arena.push_str(domain)?);
                        domains.insert(absent, domain, id);
                        Ok(id)
                    }
                }
            }
        }
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

    pub fn lookup_key<'a>(&'a self, key: &LookupKey<'_>, now_ms: i64, out: &mut Vec<Match<'a>>) {
        self.visit(key, |key, parent_domain| {
            let mut at = self.keys[key as usize].head;
            while at != END {
                let record = &self.records[at as usize];
                at = record.next;
                if (parent_domain && record.exact) || !self.is_live(record, now_ms) {
                    continue;
                }
                out.push(Match {
                    kind: record.kind,
                    category: &self.categories[record.category as usize],
                    matched: self.key_text(record.key),
                    supplier: &self.suppliers[record.supplier as usize].name,
                    context: self.context_keys.read(&self.arena, record.context),
                });
            }
        });
    }

    /// Everything known about `key` in this index, expired and FalsePositive entries too.
    pub fn search(&self, key: &LookupKey<'_>) -> Vec<Indicator> {
        let mut found = Vec::new();
        self.visit(key, |key, parent_domain| {
            let mut at = self.keys[key as usize].head;
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

    /// Calls `found(key, is_parent_domain)` for every key that may match `lookup`.
    fn visit(&self, lookup: &LookupKey<'_>, mut found: impl FnMut(u32, bool)) {
        let text_of = |key: u32| self.arena.bytes_at(self.keys[key as usize].text);
        match lookup {
            LookupKey::Ip(ip) => self.ips.for_each_match(*ip, |key| found(key, false)),
            LookupKey::Domain(domain) => {
                self.domains.for_each_match(domain, text_of, &mut found);
                if let Some(key) = self.urls.get(domain, text_of) {
                    found(key, false);
                }
            }
            LookupKey::Hash(hash) => {
                if let Some(key) = self.hashes.get(*hash) {
                    found(key, false);
                }
            }
            LookupKey::Url { text, host } => {
                if let Some(key) = self.urls.get(text, text_of) {
                    found(key, false);
                }
                let mut not_parent = |key| found(key, false);
                match host {
                    LookupHost::Domain(host) => {
                        self.masks
                            .for_each_match(host, text, &self.arena, &mut not_parent);
                        self.domains.for_each_match(host, text_of, &mut found);
                    }
                    LookupHost::Ip(ip) => {
                        // The address as masks are anchored, written on the stack: a
                        // lookup copies nothing to the heap.
                        let mut written = std::io::Cursor::new([0_u8; 64]);
                        write!(written, "{ip}").expect("an address fits in 64 bytes");
                        let length = written.position() as usize;
                        let host = std::str::from_utf8(&written.get_ref()[..length])
                            .expect("an address is written in ASCII");
                        self.masks
                            .for_each_match(host, text, &self.arena, &mut not_parent);
                        self.ips.for_each_match(*ip, not_parent);
                    }
                }
            }
        }
    }

    fn indicator_of(&self, record: &Record) -> Indicator {
        let context = self.context_keys.read(&self.arena, record.context);
        Indicator {
            value: self.key_text(record.key).to_owned(),
            kind: Some(record.kind),
            category: self.categories[record.category as usize].to_string(),
            supplier: self.suppliers[record.supplier as usize].name.clone(),
            context: context
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            tags: context.tags().map(str::to_owned).collect(),
            last_seen_ms: record.last_seen_ms,
            expires_at_ms: record.expires_at_ms,
            exact: record.exact,
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
        assert_eq!(
            from_a.context.iter().collect::<Vec<_>>(),
            [("threat", "new")]
        );
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
