//! JSON feeds: an array of records (`[{"indicator", "context", "tags", ...}]`, CyberTrace's
//! supplier format), or an object giving the supplier's settings and a default category
//! around the array: `{"category": "KL_Malicious_URL", "confidence": 80, "indicators": [...]}`.
//!
//! Records are handed on one at a time as the array is parsed, never collected: the settings
//! are read first in a pass that skips the array, since they may follow it in the object.

use std::{borrow::Cow, collections::BTreeMap, fmt};

use serde::{
    Deserialize, Deserializer,
    de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor},
};

use super::record::{EntrySink, FeedEntry, FeedError, Location};

/// The supplier's settings an object-form feed gives.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSettings {
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub confidence: Option<u8>,
    #[serde(default)]
    pub retention_minutes: Option<u32>,
    #[serde(default)]
    pub description: Option<String>,
    #[allow(dead_code, reason = "read in the second pass")]
    indicators: IgnoredAny,
}

/// A record as the file writes it; strings borrow from the file unless they hold escapes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedRecord<'a> {
    #[serde(borrow)]
    indicator: Cow<'a, str>,
    #[serde(default, borrow)]
    category: Option<Cow<'a, str>>,
    #[serde(default, rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    context: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    exact: bool,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    last_seen: i64,
    #[serde(default)]
    expires_at: i64,
}

/// The settings of an object-form feed (none for the array form), read in a pass that
/// skips the records.
pub fn read_settings(file: &str, text: &[u8]) -> Result<FeedSettings, FeedError> {
    if !is_object(text) {
        return Ok(FeedSettings::default());
    }
    serde_json::from_slice(text).map_err(|e| syntax(file, e))
}

/// Hands each record of the feed in `text` to `each`, in order.
pub fn read_records(file: &str, text: &[u8], each: &mut EntrySink<'_>) -> Result<(), FeedError> {
    let mut records = Records {
        each,
        count: 0,
        refused: None,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let parsed = if is_object(text) {
        deserializer.deserialize_map(InObject(&mut records))
    } else {
        records.deserialize(&mut deserializer)
    }
    .and_then(|()| deserializer.end());
    if let Some((number, reason)) = records.refused {
        return Err(FeedError::Record {
            file: file.to_owned(),
            location: format!("record {number}"),
            reason,
        });
    }
    parsed.map_err(|e| syntax(file, e))
}

fn is_object(text: &[u8]) -> bool {
    text.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
}

fn syntax(file: &str, e: serde_json::Error) -> FeedError {
    FeedError::Syntax {
        file: file.to_owned(),
        line: e.line(),
        reason: e.to_string(),
    }
}

/// The array of records; keeps why a record was refused, which serde's errors cannot carry.
struct Records<'e, 's> {
    each: &'e mut EntrySink<'s>,
    count: usize,
    refused: Option<(usize, String)>,
}

impl Records<'_, '_> {
    fn hand_on(&mut self, record: FeedRecord<'_>) -> Result<(), String> {
        let context: Vec<(&str, Cow<'_, str>)> = record
            .context
            .iter()
            .map(|(key, value)| {
                let text = match value {
                    serde_json::Value::String(s) => Cow::Borrowed(s.as_str()),
                    other => Cow::Owned(other.to_string()),
                };
                (key.as_str(), text)
            })
            .collect();
        let context: Vec<(&str, &str)> = context.iter().map(|(k, v)| (*k, &**v)).collect();
        let tags: Vec<&str> = record.tags.iter().map(String::as_str).collect();
        (self.each)(&FeedEntry {
            location: Location::Record(self.count),
            indicator: &record.indicator,
            category: record.category.as_deref(),
            kind: record.kind.as_deref(),
            context: &context,
            tags: &tags,
            exact: record.exact,
            last_seen: record.last_seen,
            expires_at: record.expires_at,
        })
    }
}

impl<'de> DeserializeSeed<'de> for &mut Records<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for &mut Records<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of indicator records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(record) = seq.next_element::<FeedRecord<'de>>()? {
            self.count += 1;
            if let Err(reason) = self.hand_on(record) {
                self.refused = Some((self.count, reason));
                return Err(serde::de::Error::custom("record refused"));
            }
        }
        Ok(())
    }
}

/// The object form: the records under `indicators`, every other key already read.
struct InObject<'r, 'e, 's>(&'r mut Records<'e, 's>);

impl<'de> Visitor<'de> for InObject<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with `indicators`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "indicators" {
                map.next_value_seed(&mut *self.0)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> Result<(FeedSettings, Vec<String>), FeedError> {
        let settings = read_settings("feed.json", text.as_bytes())?;
        let mut seen = Vec::new();
        read_records("feed.json", text.as_bytes(), &mut |entry: &FeedEntry<
            '_,
        >| {
            if entry.indicator == "refuse.me" {
                return Err("refused".to_owned());
            }
            let context: Vec<String> = entry
                .context
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            seen.push(format!(
                "{} {} [{}] [{}]",
                entry.indicator,
                entry.category.unwrap_or("-"),
                context.join(","),
                entry.tags.join(",")
            ));
            Ok(())
        })?;
        Ok((settings, seen))
    }

    #[test]
    fn both_forms_hand_on_every_record() {
        let (settings, seen) = read_all(
            r#"[{"indicator": "a.example", "category": "C", "context": {"n": 5, "s": "x\"y"}, "tags": ["t"]},
                {"indicator": "b\u002eexample"}]"#,
        )
        .unwrap();
        assert!(settings.category.is_none());
        assert_eq!(seen, ["a.example C [n=5,s=x\"y] [t]", "b.example - [] []"]);
        let (settings, seen) = read_all(
            r#"{"indicators": [{"indicator": "a.example"}], "category": "KL_Malicious_URL", "confidence": 80}"#,
        )
        .unwrap();
        assert_eq!(settings.category.as_deref(), Some("KL_Malicious_URL"));
        assert_eq!(settings.confidence, Some(80));
        assert_eq!(seen, ["a.example - [] []"]);
    }

    #[test]
    fn errors_name_the_line_or_the_record() {
        let error =
            read_all("[\n{\"indicator\": \"a.example\"},\n{\"indicator\": 5}\n]").unwrap_err();
        assert!(
            error.to_string().starts_with("feed.json: line 3:"),
            "{error}"
        );
        let error = read_all("[{\"indicator\": \"a.example\"}, {\"indicator\": \"refuse.me\"}]")
            .unwrap_err();
        assert_eq!(error.to_string(), "feed.json: record 2: refused");
        let error = read_all("{\"indicators\": [], \"colour\": 1}").unwrap_err();
        assert!(error.to_string().contains("colour"), "{error}");
        assert!(read_all("[{\"indicator\": \"a.example\"}] trailing").is_err());
    }
}
