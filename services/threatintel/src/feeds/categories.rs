//! The category an indicator of a feed without categories is filed under. STIX has none:
//! it has `indicator_types` (and STIX 2.0's `labels`) from an open vocabulary
//! (`malicious-activity`, `anonymization`, …). A mapping keyed by such a type and the kind
//! of value names CyberTrace's category for each; an operator's file (`--feed-categories`)
//! adds to the defaults or replaces them.

use std::{collections::HashMap, path::Path};

/// The kinds of value a feed names an indicator by, as the mapping keys them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    Url,
    Domain,
    Ipv4,
    Ipv6,
    Md5,
    Sha1,
    Sha256,
}

impl ValueKind {
    pub const ALL: [ValueKind; 7] = [
        ValueKind::Url,
        ValueKind::Domain,
        ValueKind::Ipv4,
        ValueKind::Ipv6,
        ValueKind::Md5,
        ValueKind::Sha1,
        ValueKind::Sha256,
    ];

    /// The kind's name in the category mapping.
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Url => "url",
            ValueKind::Domain => "domain",
            ValueKind::Ipv4 => "ipv4",
            ValueKind::Ipv6 => "ipv6",
            ValueKind::Md5 => "md5",
            ValueKind::Sha1 => "sha1",
            ValueKind::Sha256 => "sha256",
        }
    }

    /// The indicator type a feed record gives for it.
    pub fn feed_type(self) -> &'static str {
        match self {
            ValueKind::Url => "url",
            ValueKind::Domain => "domain",
            ValueKind::Ipv4 | ValueKind::Ipv6 => "ip",
            ValueKind::Md5 | ValueKind::Sha1 | ValueKind::Sha256 => "hash",
        }
    }

    /// Whether `value` has this kind's shape where the index would not check it: a hash's
    /// length must be its algorithm's (the index tells hashes apart by length).
    pub fn fits(self, value: &str) -> bool {
        let hex_digits =
            |n: usize| value.len() == n && value.bytes().all(|b| b.is_ascii_hexdigit());
        match self {
            ValueKind::Md5 => hex_digits(32),
            ValueKind::Sha1 => hex_digits(40),
            ValueKind::Sha256 => hex_digits(64),
            _ => true,
        }
    }
}

/// `"<indicator type or label>/<kind>"` → category, `*` as the type matching any; kinds are
/// [`ValueKind::name`]s.
#[derive(Clone, Debug)]
pub struct FeedCategories {
    by_key: HashMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CategoriesError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not a JSON object of \"type/kind\": \"category\" strings: {source}")]
    Syntax {
        file: String,
        source: serde_json::Error,
    },
    #[error("{file}: `{key}`: {reason}")]
    Entry {
        file: String,
        key: String,
        reason: String,
    },
}

/// CyberTrace's categories for the types STIX feeds use most.
const DEFAULTS: &[(&str, &str)] = &[
    ("*/url", "KL_Malicious_URL"),
    ("*/domain", "KL_Malicious_URL"),
    ("phishing/url", "KL_Phishing_URL"),
    ("phishing/domain", "KL_Phishing_URL"),
    ("botnet/url", "KL_BotnetCnC_URL"),
    ("botnet/domain", "KL_BotnetCnC_URL"),
    ("c2/url", "KL_BotnetCnC_URL"),
    ("c2/domain", "KL_BotnetCnC_URL"),
    ("*/ipv4", "KL_IP_Reputation"),
    ("*/ipv6", "KL_IP_Reputation"),
    ("*/md5", "KL_Malicious_Hash_MD5"),
    ("*/sha1", "KL_Malicious_Hash_SHA1"),
    ("*/sha256", "KL_Malicious_Hash_SHA256"),
];

/// The longest category name a mapping gives.
const MAX_CATEGORY_LEN: usize = 128;

impl Default for FeedCategories {
    fn default() -> Self {
        FeedCategories {
            by_key: DEFAULTS
                .iter()
                .map(|(key, category)| ((*key).to_owned(), (*category).to_owned()))
                .collect(),
        }
    }
}

impl FeedCategories {
    /// The defaults with the entries of the JSON object in `file` over them.
    pub fn from_file(file: &Path) -> Result<Self, CategoriesError> {
        let name = file.display().to_string();
        let text = std::fs::read(file).map_err(|source| CategoriesError::Read {
            file: name.clone(),
            source,
        })?;
        let entries: HashMap<String, String> =
            serde_json::from_slice(&text).map_err(|source| CategoriesError::Syntax {
                file: name.clone(),
                source,
            })?;
        let mut categories = FeedCategories::default();
        for (key, category) in entries {
            let refuse = |reason: String| CategoriesError::Entry {
                file: name.clone(),
                key: key.clone(),
                reason,
            };
            let Some((_, kind)) = key.rsplit_once('/') else {
                return Err(refuse("name it `type/kind`".into()));
            };
            if !ValueKind::ALL.iter().any(|k| k.name() == kind) {
                let kinds: Vec<&str> = ValueKind::ALL.iter().map(|k| k.name()).collect();
                return Err(refuse(format!(
                    "kind `{kind}` is none of {}",
                    kinds.join(", ")
                )));
            }
            if category.is_empty() || category.len() > MAX_CATEGORY_LEN {
                return Err(refuse(format!(
                    "a category has 1 to {MAX_CATEGORY_LEN} characters"
                )));
            }
            categories.by_key.insert(key, category);
        }
        Ok(categories)
    }

    /// The category of a `kind` value of an indicator with `types` (its `indicator_types`,
    /// then its `labels`): the first type the mapping names for the kind, else the kind's
    /// `*` entry.
    pub fn category<'c>(&'c self, types: &[&str], kind: ValueKind) -> Option<&'c str> {
        let mut key = String::new();
        types
            .iter()
            .chain(std::iter::once(&"*"))
            .find_map(|kind_of_threat| {
                key.clear();
                key.push_str(kind_of_threat);
                key.push('/');
                key.push_str(kind.name());
                self.by_key.get(&key)
            })
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_named_type_wins_and_star_is_the_fallback() {
        let categories = FeedCategories::default();
        assert_eq!(
            categories.category(&["malicious-activity", "phishing"], ValueKind::Url),
            Some("KL_Phishing_URL")
        );
        assert_eq!(
            categories.category(&["malicious-activity"], ValueKind::Url),
            Some("KL_Malicious_URL")
        );
        assert_eq!(
            categories.category(&[], ValueKind::Sha1),
            Some("KL_Malicious_Hash_SHA1")
        );
        assert_eq!(
            categories.category(&["anonymization"], ValueKind::Ipv4),
            Some("KL_IP_Reputation")
        );
    }

    #[test]
    fn a_file_adds_to_the_defaults_and_bad_entries_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("feed-categories.json");
        std::fs::write(
            &file,
            r#"{"anonymization/ipv4": "KL_Tor_IP", "*/url": "KL_Suspicious_URL"}"#,
        )
        .unwrap();
        let categories = FeedCategories::from_file(&file).unwrap();
        assert_eq!(
            categories.category(&["anonymization"], ValueKind::Ipv4),
            Some("KL_Tor_IP")
        );
        assert_eq!(
            categories.category(&["unknown"], ValueKind::Url),
            Some("KL_Suspicious_URL")
        );
        assert_eq!(
            categories.category(&["phishing"], ValueKind::Url),
            Some("KL_Phishing_URL")
        );
        std::fs::write(&file, r#"{"phishing/email": "KL_X"}"#).unwrap();
        let error = FeedCategories::from_file(&file).unwrap_err().to_string();
        assert!(error.ends_with("`phishing/email`: kind `email` is none of url, domain, ipv4, ipv6, md5, sha1, sha256"), "{error}");
        std::fs::write(&file, r#"["x"]"#).unwrap();
        assert!(matches!(
            FeedCategories::from_file(&file),
            Err(CategoriesError::Syntax { .. })
        ));
    }
}
