//! URL masks: `*` matches any run of characters (`example.com/testpage/*`, `*.example.com`,
//! `*.example.com/login*`). A mask is normalized like a URL, and filed under the host it is
//! anchored to so a lookup only tries the masks of its own host and that host's parents.

use super::{
    arena::{Arena, IndexFull},
    error::IndicatorError,
    labels::LabelCounts,
    text_table::TextTable,
    url::{canonical_domain, cleaned, push_path_and_query},
    url_parts,
};

/// A normalized mask and where it is anchored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskPattern {
    pub pattern: String,
    anchor: Anchor,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Anchor {
    /// The mask's host has no `*`, or is `*.` + a host: file it under that host.
    Host(String),
    /// A `*` inside the host (`ex*ple.com/...`): tried for every URL.
    Unanchored,
}

pub fn parse_mask(input: &str) -> Result<MaskPattern, IndicatorError> {
    let bad = |reason: &str| IndicatorError::BadUrl {
        value: input.to_owned(),
        reason: reason.to_owned(),
    };
    let cleaned = cleaned(input);
    // The same rule as URLs: a web scheme or none, and a host.
    let parts = url_parts::split(&cleaned).map_err(|reason| IndicatorError::NotWebUrl {
        value: input.to_owned(),
        reason,
    })?;
    let authority = parts
        .authority
        .rsplit_once('@')
        .map_or(parts.authority, |(_, host)| host);
    let host = strip_port(authority).to_ascii_lowercase();
    if host.contains(':') && !host.starts_with('[') {
        // Ports are dropped from URLs: one holding a `*` would match nothing.
        return Err(bad("a port is a number"));
    }
    let (wildcard, bare) = match host.strip_prefix("*.") {
        Some(bare) => ("*.", bare),
        None => ("", host.as_str()),
    };
    let anchor_host = if bare.contains('*') {
        // Not parsed as a host (the `*` is no host character): checked here instead, or a
        // host such as ` *` would be filed as a pattern that does not read back as itself.
        if !bare
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '*'))
        {
            return Err(bad("a host holds letters, digits, `-`, `_`, `.` and `*`"));
        }
        None
    } else {
        let parsed = ::url::Host::parse(bare).map_err(|e| bad(&e.to_string()))?;
        Some(match parsed {
            ::url::Host::Domain(domain) => {
                canonical_domain(&domain).ok_or_else(|| bad("empty host"))?
            }
            ::url::Host::Ipv4(ip) => ip.to_string(),
            ::url::Host::Ipv6(ip) => format!("[{ip}]"),
        })
    };
    let mut pattern = match &anchor_host {
        Some(canonical) => format!("{wildcard}{canonical}"),
        None => host.clone(),
    };
    // The path and query are normalized exactly as a URL's are (dot-segments, escapes, a
    // lone `/`), so the fixed parts of a mask read as those of the URLs it should match.
    push_path_and_query(&parts, &mut pattern);
    if !pattern.contains('*') {
        return Err(bad("a mask needs a `*`"));
    }
    if pattern.chars().all(|c| c == '*' || c == '.' || c == '/') {
        return Err(bad("a mask must name something besides `*`"));
    }
    let anchor = anchor_host.map_or(Anchor::Unanchored, Anchor::Host);
    Ok(MaskPattern { pattern, anchor })
}

fn strip_port(authority: &str) -> &str {
    if let Some(end) = authority.find(']') {
        return &authority[..=end];
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was and how much of the text it has swallowed so far.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_pi, star_ti)) = star {
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

const NONE: u32 = u32::MAX;

/// Masks filed by anchor host. The masks of one anchor form a list threaded through
/// `next_in_anchor`, so an anchor costs a slot and eight bytes, not a vector.
#[derive(Default)]
pub struct MaskTable {
    /// Pattern → mask number.
    by_pattern: TextTable,
    /// Mask number → its pattern in the arena.
    patterns: Vec<u32>,
    /// Mask number → key id.
    keys: Vec<u32>,
    next_in_anchor: Vec<u32>,
    /// Anchor host → anchor number.
    by_anchor: TextTable,
    /// The label counts of the anchor hosts: which of a host's parents may be one.
    anchor_label_counts: LabelCounts,
    /// Anchor number → (host in the arena, first mask).
    anchors: Vec<(u32, u32)>,
    unanchored: Vec<u32>,
}

impl MaskTable {
    /// The key id of `mask`; a new mask stores its pattern and takes `new_key(pattern)`.
    pub fn key_id(
        &mut self,
        mask: &MaskPattern,
        arena: &mut Arena,
        new_key: impl FnOnce(u32) -> u32,
    ) -> Result<u32, IndexFull> {
        let patterns = &self.patterns;
        let absent = match self
            .by_pattern
            .find(&mask.pattern, |m| arena.bytes_at(patterns[m as usize]))
        {
            Ok(found) => return Ok(self.keys[found as usize]),
            Err(absent) => absent,
        };
        let number = self.patterns.len() as u32;
        let pattern = arena.push_str(&mask.pattern)?;
        let next = match &mask.anchor {
            Anchor::Host(host) => {
                let anchors = &self.anchors;
                let anchor = match self
                    .by_anchor
                    .find(host, |a| arena.bytes_at(anchors[a as usize].0))
                {
                    Ok(anchor) => anchor,
                    Err(absent) => {
                        let anchor = self.anchors.len() as u32;
                        self.anchors.push((arena.push_str(host)?, NONE));
                        self.by_anchor.insert(absent, anchor);
                        self.anchor_label_counts.add(host);
                        anchor
                    }
                };
                std::mem::replace(&mut self.anchors[anchor as usize].1, number)
            }
            Anchor::Unanchored => {
                self.unanchored.push(number);
                NONE
            }
        };
        let key = new_key(pattern);
        self.by_pattern.insert(absent, number);
        self.patterns.push(pattern);
        self.keys.push(key);
        self.next_in_anchor.push(next);
        Ok(key)
    }

    /// Calls `found` with the key id of every mask matching the normalized URL `text` whose
    /// host is `host`.
    pub fn for_each_match(
        &self,
        host: &str,
        text: &str,
        arena: &Arena,
        mut found: impl FnMut(u32),
    ) {
        let mut try_mask = |mask: u32| {
            if glob_match(arena.str_at(self.patterns[mask as usize]), text) {
                found(self.keys[mask as usize]);
            }
        };
        let anchor_of = |anchor: u32| arena.bytes_at(self.anchors[anchor as usize].0);
        for (suffix, _) in self.anchor_label_counts.suffixes(host) {
            if let Some(anchor) = self.by_anchor.get(suffix, anchor_of) {
                let mut mask = self.anchors[anchor as usize].1;
                while mask != NONE {
                    try_mask(mask);
                    mask = self.next_in_anchor[mask as usize];
                }
            }
        }
        for &mask in &self.unanchored {
            try_mask(mask);
        }
    }

    pub fn shrink_to_fit(&mut self) {
        self.by_pattern.shrink_to_fit();
        self.by_anchor.shrink_to_fit();
        self.patterns.shrink_to_fit();
        self.keys.shrink_to_fit();
        self.next_in_anchor.shrink_to_fit();
        self.anchors.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_cybertrace_masks() {
        let cases = [
            (
                "example.com/testpage/*",
                "example.com/testpage/a/b.html",
                true,
            ),
            ("example.com/testpage/*", "example.com/testpage", false),
            ("*.example.com", "mail.example.com", true),
            ("*.example.com", "example.com", false),
            (
                "*.example.com/login*",
                "a.b.example.com/login.php?x=1",
                true,
            ),
            ("ex*le.com/*", "example.com/x", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob_match(pattern, text), expected, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn masks_are_normalized_like_urls() {
        assert_eq!(
            parse_mask("HTTPS://WWW.Example.com:8080/TestPage/*")
                .unwrap()
                .pattern,
            "example.com/TestPage/*"
        );
        assert_eq!(
            parse_mask("*.Example.COM").unwrap().pattern,
            "*.example.com"
        );
        assert_eq!(
            parse_mask("http://*.пример.рф/*").unwrap().pattern,
            "*.xn--e1afmkfd.xn--p1ai/*"
        );
        assert_eq!(
            parse_mask("example.com/a/../TestPage/%7Euser/*")
                .unwrap()
                .pattern,
            "example.com/TestPage/~user/*",
            "dot-segments and escapes as in URLs"
        );
        assert_eq!(
            parse_mask("example.com?q=*").unwrap().pattern,
            "example.com/?q=*"
        );
        assert!(parse_mask("*").is_err());
        assert!(parse_mask("*/*").is_err());
    }

    #[test]
    fn table_tries_masks_of_the_host_and_its_parents() {
        // Here a key id is the offset of its text.
        let (mut arena, mut table) = (Arena::default(), MaskTable::default());
        let mut keys = Vec::new();
        for mask in [
            "example.com/testpage/*",
            "*.example.com",
            "ex*le.com/*",
            "other.org/*",
            "example.com/testpage/*",
        ] {
            let mask = parse_mask(mask).unwrap();
            let key = table.key_id(&mask, &mut arena, |pattern| pattern).unwrap();
            keys.push(key);
        }
        assert_eq!(keys[4], keys[0], "a repeated mask has one key");
        let matches = |host: &str, text: &str| {
            let mut found = Vec::new();
            table.for_each_match(host, text, &arena, |key| {
                found.push(arena.str_at(key).to_owned())
            });
            found.sort();
            found
        };
        assert_eq!(
            matches("example.com", "example.com/testpage/x"),
            ["ex*le.com/*", "example.com/testpage/*"]
        );
        assert_eq!(matches("a.example.com", "a.example.com"), ["*.example.com"]);
        assert_eq!(
            matches("example.org", "example.org/x"),
            Vec::<String>::new()
        );
    }
}
