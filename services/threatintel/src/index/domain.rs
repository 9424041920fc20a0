//! Domain indicators: a domain matches itself and its subdomains, unless marked exact.

use super::{
    error::IndicatorError,
    labels::LabelCounts,
    text_table::{Absent, TextTable},
    url::canonical_domain,
};

/// A domain made comparable: lower case, Punycode, no `www.`, no leading or trailing dot.
pub fn normalize_domain(input: &str) -> Result<String, IndicatorError> {
    let bad = |reason: String| IndicatorError::BadDomain {
        value: input.to_owned(),
        reason,
    };
    match ::url::Host::parse(input.trim()).map_err(|e| bad(e.to_string()))? {
        ::url::Host::Domain(domain) => {
            canonical_domain(&domain).ok_or_else(|| bad("empty".to_owned()))
        }
        _ => Err(bad("this is an IP address".to_owned())),
    }
}

/// Domain → key id; the domain's text is the key's, in the arena.
#[derive(Default)]
pub struct DomainTable {
    keys: TextTable,
    label_counts: LabelCounts,
}

impl DomainTable {
    pub fn find<'t>(&self, domain: &str, text_of: impl Fn(u32) -> &'t [u8]) -> Result<u32, Absent> {
        self.keys.find(domain, text_of)
    }

    /// Files `key` under `domain`, which [`DomainTable::find`] did not find.
    pub fn insert(&mut self, absent: Absent, domain: &str, key: u32) {
        self.keys.insert(absent, key);
        self.label_counts.add(domain);
    }

    /// Calls `found(key, is_parent)` for `domain` and for each of its parent domains present.
    pub fn for_each_match<'t>(
        &self,
        domain: &str,
        text_of: impl Fn(u32) -> &'t [u8] + Copy,
        mut found: impl FnMut(u32, bool),
    ) {
        for (suffix, is_parent) in self.label_counts.suffixes(domain) {
            if let Some(key) = self.keys.get(suffix, text_of) {
                found(key, is_parent);
            }
        }
    }

    pub fn shrink_to_fit(&mut self) {
        self.keys.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalized() {
        assert_eq!(normalize_domain("WWW.Evil.COM.").unwrap(), "evil.com");
        assert_eq!(
            normalize_domain("пример.рф").unwrap(),
            "xn--e1afmkfd.xn--p1ai"
        );
        assert!(normalize_domain("192.0.2.1").is_err());
        assert!(normalize_domain("bad domain.com").is_err());
    }

    #[test]
    fn a_domain_and_its_parents_are_found() {
        let texts = ["evil.com", "a.evil.com"];
        let text_of = |id: u32| texts[id as usize].as_bytes();
        let mut table = DomainTable::default();
        for (i, domain) in texts.iter().enumerate() {
            let absent = table.find(domain, text_of).unwrap_err();
            table.insert(absent, domain, i as u32);
        }
        let mut found = Vec::new();
        table.for_each_match("x.a.evil.com", text_of, |key, parent| {
            found.push((key, parent))
        });
        assert_eq!(found, vec![(1, true), (0, true)]);
        found.clear();
        table.for_each_match("evil.com", text_of, |key, parent| found.push((key, parent)));
        assert_eq!(found, vec![(0, false)]);
        found.clear();
        table.for_each_match("notevil.com", text_of, |key, parent| {
            found.push((key, parent))
        });
        assert!(found.is_empty());
    }
}
