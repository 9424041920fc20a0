//! An alert's severity from the threat-intel categories of its matches: the highest of them.
//! Defaults by the words of CyberTrace's category names; `--alert-severity CATEGORY=LEVEL`
//! sets a category exactly.

use std::collections::HashMap;

use xdr_mesh::quote::quoted;
use xdr_proto::pb::{Event, Severity};

#[derive(Clone, Debug, Default)]
pub struct SeverityMap {
    exact: HashMap<String, Severity>,
}

impl SeverityMap {
    /// The defaults with `overrides` (`CATEGORY=low|medium|high|critical` each).
    pub fn with_overrides(overrides: &[String]) -> Result<Self, String> {
        let mut exact = HashMap::new();
        for entry in overrides {
            let (category, level) = entry
                .split_once('=')
                .ok_or_else(|| format!("{}: not CATEGORY=LEVEL", quoted(entry)))?;
            let severity = match level.to_ascii_lowercase().as_str() {
                "low" => Severity::Low,
                "medium" => Severity::Medium,
                "high" => Severity::High,
                "critical" => Severity::Critical,
                _ => {
                    return Err(format!(
                        "{}: a level is low, medium, high or critical",
                        quoted(level)
                    ));
                }
            };
            exact.insert(category.to_owned(), severity);
        }
        Ok(SeverityMap { exact })
    }

    pub fn of_category(&self, category: &str) -> Severity {
        if let Some(severity) = self.exact.get(category) {
            return *severity;
        }
        let has = |word: &str| category.contains(word);
        if has("BotnetCnC") || has("APT") || has("Ransomware") {
            Severity::Critical
        } else if has("Malicious") || has("Phishing") || has("InternalTI") {
            Severity::High
        } else if has("Reputation") || has("Mobile") {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    /// The highest severity of the event's matches (low without any).
    pub fn of_event(&self, event: &Event) -> Severity {
        event
            .ti
            .iter()
            .map(|ti| self.of_category(&ti.category))
            .max_by_key(|s| *s as i32)
            .unwrap_or(Severity::Low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_map_by_their_words_unless_set_exactly() {
        let map = SeverityMap::with_overrides(&["KL_IP_Reputation=critical".into()]).unwrap();
        assert_eq!(map.of_category("KL_BotnetCnC_URL"), Severity::Critical);
        assert_eq!(map.of_category("KL_Malicious_URL"), Severity::High);
        assert_eq!(map.of_category("KL_IP_Reputation"), Severity::Critical);
        assert_eq!(map.of_category("Something"), Severity::Low);
        assert!(SeverityMap::with_overrides(&["X=urgent".into()]).is_err());
    }
}
