//! URL masks: `*` matches any run of characters (`example.com/testpage/*`, `*.example.com`,
//! `*.example.com/login*`). A mask is normalized like a URL, and filed under the host it is
//! anchored to so a lookup only tries the masks of its own host and that host's parents.

use rustc_hash::FxHashMap;

use super::{parse::IndicatorError, url::canonical_domain};

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
    let trimmed = input.trim();
    let without_scheme = &trimmed[super::url::scheme_len(trimmed).unwrap_or(0)..];
    let split = without_scheme
        .find(['/', '?'])
        .unwrap_or(without_scheme.len());
    let (authority, rest) = without_scheme.split_at(split);
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = strip_port(authority).to_ascii_lowercase();
    let (wildcard, bare) = match host.strip_prefix("*.") {
        Some(bare) => ("*.", bare),
        None => ("", host.as_str()),
    };
    let anchor_host = if bare.contains('*') {
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
    let host = match &anchor_host {
        Some(canonical) => format!("{wildcard}{canonical}"),
        None => host.clone(),
    };
    let rest = percent_encoding::percent_decode_str(rest.split('#').next().unwrap_or_default())
        .decode_utf8_lossy();
    let rest = if rest == "/" { "" } else { &rest };
    let pattern = format!("{host}{rest}");
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

/// Masks filed by anchor host; each mask heads a chain of records.
#[derive(Default)]
pub struct MaskTable {
    patterns: Vec<Box<str>>,
    heads: Vec<u32>,
    by_pattern: FxHashMap<Box<str>, u32>,
    by_anchor: FxHashMap<Box<str>, Vec<u32>>,
    unanchored: Vec<u32>,
}

impl MaskTable {
    /// The record-chain head of `mask`, created as `empty` if new.
    pub fn head_mut(&mut self, mask: &MaskPattern, empty: u32) -> &mut u32 {
        let id = match self.by_pattern.get(mask.pattern.as_str()) {
            Some(&id) => id,
            None => {
                let id = self.patterns.len() as u32;
                self.patterns.push(mask.pattern.as_str().into());
                self.heads.push(empty);
                self.by_pattern.insert(mask.pattern.as_str().into(), id);
                match &mask.anchor {
                    Anchor::Host(host) => self
                        .by_anchor
                        .entry(host.as_str().into())
                        .or_default()
                        .push(id),
                    Anchor::Unanchored => self.unanchored.push(id),
                }
                id
            }
        };
        &mut self.heads[id as usize]
    }

    /// Calls `found` with the record-chain head of every mask matching the normalized URL
    /// `text` whose host is `host`.
    pub fn for_each_match(&self, host: &str, text: &str, mut found: impl FnMut(u32)) {
        let mut try_masks = |ids: &[u32]| {
            for &id in ids {
                if glob_match(&self.patterns[id as usize], text) {
                    found(self.heads[id as usize]);
                }
            }
        };
        let mut suffix = host;
        loop {
            if let Some(ids) = self.by_anchor.get(suffix) {
                try_masks(ids);
            }
            match suffix.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => suffix = parent,
                _ => break,
            }
        }
        try_masks(&self.unanchored);
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
        assert!(parse_mask("*").is_err());
        assert!(parse_mask("*/*").is_err());
    }

    #[test]
    fn table_tries_masks_of_the_host_and_its_parents() {
        let mut table = MaskTable::default();
        for (i, mask) in [
            "example.com/testpage/*",
            "*.example.com",
            "ex*le.com/*",
            "other.org/*",
        ]
        .iter()
        .enumerate()
        {
            *table.head_mut(&parse_mask(mask).unwrap(), u32::MAX) = i as u32;
        }
        let matches = |host: &str, text: &str| {
            let mut found = Vec::new();
            table.for_each_match(host, text, |head| found.push(head));
            found.sort();
            found
        };
        assert_eq!(matches("example.com", "example.com/testpage/x"), vec![0, 2]);
        assert_eq!(matches("a.example.com", "a.example.com"), vec![1]);
        assert_eq!(matches("example.org", "example.org/x"), Vec::<u32>::new());
    }
}
