//! Domain indicators: a domain matches itself and its subdomains, unless marked exact.

use rustc_hash::FxHashMap;

use super::{parse::IndicatorError, url::canonical_domain};

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

#[derive(Default)]
pub struct DomainTable {
    heads: FxHashMap<Box<str>, u32>,
}

impl DomainTable {
    pub fn head_mut(&mut self, domain: &str, empty: u32) -> &mut u32 {
        self.heads.entry(domain.into()).or_insert(empty)
    }

    /// Calls `found(head, is_parent)` for `domain` and for each of its parent domains present.
    pub fn for_each_match(&self, domain: &str, mut found: impl FnMut(u32, bool)) {
        let mut suffix = domain;
        let mut is_parent = false;
        loop {
            if let Some(&head) = self.heads.get(suffix) {
                found(head, is_parent);
            }
            match suffix.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => suffix = parent,
                _ => return,
            }
            is_parent = true;
        }
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
        let mut table = DomainTable::default();
        *table.head_mut("evil.com", u32::MAX) = 1;
        *table.head_mut("a.evil.com", u32::MAX) = 2;
        let mut found = Vec::new();
        table.for_each_match("x.a.evil.com", |head, parent| found.push((head, parent)));
        assert_eq!(found, vec![(2, true), (1, true)]);
        found.clear();
        table.for_each_match("evil.com", |head, parent| found.push((head, parent)));
        assert_eq!(found, vec![(1, false)]);
        found.clear();
        table.for_each_match("notevil.com", |head, parent| found.push((head, parent)));
        assert!(found.is_empty());
    }
}
