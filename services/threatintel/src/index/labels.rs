//! Which numbers of labels a table's domains have, so that a lookup walking up a host's
//! parent domains (`a.b.example.com`, `b.example.com`, `example.com`, `com`) probes only
//! those some key could be: each probe of a table much larger than the cache is a miss, and
//! feeds rarely hold a top-level domain alone or a domain many labels deep.

/// A set of label counts; 63 and more share one member (a few needless probes, never a
/// missed one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LabelCounts(u64);

impl LabelCounts {
    pub fn add(&mut self, domain: &str) {
        self.0 |= member(labels(domain));
    }

    fn has(self, labels: usize) -> bool {
        self.0 & member(labels) != 0
    }

    /// `domain` and each of its parent domains whose label count is in the set, each with
    /// whether it is a parent. A parent is what follows a dot, if anything does.
    pub fn suffixes(self, domain: &str) -> impl Iterator<Item = (&str, bool)> {
        let first = (domain, labels(domain), false);
        std::iter::successors(Some(first), |&(suffix, labels, _)| {
            let (_, parent) = suffix.split_once('.')?;
            (!parent.is_empty()).then_some((parent, labels - 1, true))
        })
        .filter(move |&(_, labels, _)| self.has(labels))
        .map(|(suffix, _, is_parent)| (suffix, is_parent))
    }
}

fn labels(domain: &str) -> usize {
    domain.bytes().filter(|&b| b == b'.').count() + 1
}

fn member(labels: usize) -> u64 {
    1 << labels.min(63)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_suffixes_with_a_count_held_are_walked() {
        let mut counts = LabelCounts::default();
        counts.add("evil.example");
        counts.add("a.b.c.d");
        let walked: Vec<_> = counts.suffixes("x.cdn.evil.example").collect();
        assert_eq!(
            walked,
            [("x.cdn.evil.example", false), ("evil.example", true)]
        );
        // Empty labels count: `a..b` has three, its parent `.b` two.
        assert_eq!(counts.suffixes("a..b").collect::<Vec<_>>(), [(".b", true)]);
        assert_eq!(LabelCounts::default().suffixes("evil.example").count(), 0);
        let mut deep = LabelCounts::default();
        deep.add(&"a.".repeat(70));
        assert_eq!(deep.suffixes(&"b.".repeat(80)).count(), 81 - 62);
    }
}
