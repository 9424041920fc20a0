//! STIX 2.1 bundles (`<Supplier>.stix.json`): each `indicator` object whose pattern names
//! values we look up becomes a record per value. Objects are handed on one at a time as the
//! `objects` array is parsed, never collected; an object is first read raw, then only an
//! indicator is read whole, so other objects' properties — any shape a producer gives them
//! — cost a skim.
//!
//! What an indicator gives a record: `valid_until` → expiry (an expired one is skipped),
//! `revoked: true` → skipped, `modified` → last seen, `indicator_types` and `labels` → tags
//! and, through [`FeedCategories`], the category; `name`, `description`, `id`,
//! `created_by_ref`, `confidence` and `valid_from` (as `first_seen`) → context.

mod pattern;
mod pattern_values;

use std::{borrow::Cow, fmt};

use serde::{
    Deserialize, Deserializer,
    de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor},
};
use serde_json::value::RawValue;

use super::{
    categories::FeedCategories,
    loader::Skipped,
    record::{EntrySink, FeedEntry, FeedError, Location, SkipReason, bounded, bounded_tags, named},
};

/// A STIX object's properties a record is made of; others are skipped unread.
#[derive(Deserialize)]
struct StixIndicator<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pattern: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pattern_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    valid_from: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    valid_until: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    modified: Option<Cow<'a, str>>,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    confidence: Option<u8>,
    #[serde(default, borrow)]
    indicator_types: Vec<Cow<'a, str>>,
    #[serde(default, borrow)]
    labels: Vec<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    description: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    created_by_ref: Option<Cow<'a, str>>,
}

/// An object's type, read before the rest.
#[derive(Deserialize)]
struct StixType<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

/// Hands each indicator value of the bundle in `text` to `each`, in order; what it skipped.
pub fn read_bundle(
    file: &str,
    text: &[u8],
    now_ms: i64,
    categories: &FeedCategories,
    each: &mut EntrySink<'_>,
) -> Result<Skipped, FeedError> {
    let mut objects = Objects {
        file,
        now_ms,
        categories,
        each,
        count: 0,
        skipped: Skipped::default(),
        refused: None,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let parsed = deserializer
        .deserialize_map(InBundle {
            objects: &mut objects,
            is_bundle: false,
        })
        .and_then(|()| deserializer.end());
    if let Some((number, reason)) = objects.refused {
        return Err(FeedError::Record {
            file: file.to_owned(),
            location: Location::Object(number).to_string(),
            reason,
        });
    }
    parsed.map_err(|e| FeedError::Syntax {
        file: file.to_owned(),
        line: e.line(),
        reason: e.to_string(),
    })?;
    Ok(objects.skipped)
}

/// The bundle's `objects`; keeps why an object was refused, which serde's errors cannot carry.
struct Objects<'e, 's> {
    file: &'e str,
    now_ms: i64,
    categories: &'e FeedCategories,
    each: &'e mut EntrySink<'s>,
    count: usize,
    skipped: Skipped,
    refused: Option<(usize, String)>,
}

impl Objects<'_, '_> {
    /// Files an indicator's values; other objects are passed over.
    fn take(&mut self, object: &RawValue) -> Result<(), String> {
        let location = Location::Object(self.count);
        let Ok(StixType { kind }) = serde_json::from_str::<StixType>(object.get()) else {
            return Err("not a STIX object (no `type`)".into());
        };
        if kind != "indicator" {
            return Ok(());
        }
        let indicator: StixIndicator =
            serde_json::from_str(object.get()).map_err(|e| format!("an indicator: {e}"))?;
        let id = named(indicator.id.as_deref().unwrap_or("an indicator"));
        match self.hand_on(&indicator, location) {
            Ok(()) => Ok(()),
            Err(Refusal::Skip(reason, detail)) => {
                let detail = format!("{id}: {}{detail}", reason.key());
                self.skipped.add(self.file, location, reason, &detail);
                Ok(())
            }
            Err(Refusal::Fail(reason)) => Err(reason),
        }
    }

    fn hand_on(
        &mut self,
        indicator: &StixIndicator<'_>,
        location: Location,
    ) -> Result<(), Refusal> {
        let bare = |reason| Refusal::Skip(reason, String::new());
        if indicator.revoked {
            return Err(bare(SkipReason::Revoked));
        }
        let expires_at = timestamp_ms(indicator.valid_until.as_deref());
        if expires_at != 0 && expires_at <= self.now_ms {
            return Err(bare(SkipReason::Expired));
        }
        if indicator.pattern_type.as_deref().unwrap_or("stix") != "stix" {
            return Err(bare(SkipReason::PatternType));
        }
        let pattern = indicator.pattern.as_deref().unwrap_or_default();
        let tree = pattern::parse(pattern)
            .map_err(|e| Refusal::Skip(SkipReason::PatternSyntax, format!(": {e}")))?;
        let values = pattern_values::values_of(&tree).map_err(bare)?;

        let types = bounded_tags(
            (indicator.indicator_types.iter())
                .chain(&indicator.labels)
                .map(|t| &**t),
        );
        let confidence = indicator.confidence.map(|c| c.to_string());
        let context: Vec<(&str, &str)> = [
            ("name", indicator.name.as_deref()),
            ("description", indicator.description.as_deref()),
            ("stix_id", indicator.id.as_deref()),
            ("created_by_ref", indicator.created_by_ref.as_deref()),
            ("confidence", confidence.as_deref()),
            ("first_seen", indicator.valid_from.as_deref()),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, bounded(value?))))
        .collect();
        let last_seen = timestamp_ms(indicator.modified.as_deref());
        for (kind, value) in values {
            let category = self.categories.category(&types, kind).ok_or_else(|| {
                Refusal::Skip(
                    SkipReason::InvalidValue,
                    format!(": no category for {}", kind.name()),
                )
            })?;
            (self.each)(&FeedEntry {
                location,
                indicator: value,
                category: Some(category),
                kind: Some(kind.feed_type()),
                context: &context,
                tags: &types,
                exact: false,
                last_seen,
                expires_at,
            })
            .map_err(Refusal::Fail)?;
        }
        Ok(())
    }
}

/// Why an indicator is not filed: skipped (the bundle loads without it), or failing the
/// bundle (the sink refused it).
enum Refusal {
    Skip(SkipReason, String),
    Fail(String),
}

/// Milliseconds since the epoch of a STIX timestamp (RFC 3339, UTC); 0 when there is none
/// or it does not parse (the loader counts "not given" as now).
fn timestamp_ms(text: Option<&str>) -> i64 {
    text.and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_millis() as i64)
}

/// The bundle object: its `objects` handed on, its `type` checked, the rest skipped.
struct InBundle<'o, 'e, 's> {
    objects: &'o mut Objects<'e, 's>,
    is_bundle: bool,
}

impl<'de> Visitor<'de> for InBundle<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a STIX bundle: an object with \"type\": \"bundle\" and `objects`")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match &*key {
                "objects" => map.next_value_seed(&mut *self.objects)?,
                "type" => self.is_bundle = map.next_value::<Cow<'de, str>>()? == "bundle",
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !self.is_bundle {
            return Err(serde::de::Error::custom(
                "not a STIX bundle (\"type\": \"bundle\")",
            ));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for &mut Objects<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for &mut Objects<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of STIX objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(object) = seq.next_element::<&'de RawValue>()? {
            self.count += 1;
            if let Err(reason) = self.take(object) {
                self.refused = Some((self.count, reason));
                return Err(serde::de::Error::custom("object refused"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
