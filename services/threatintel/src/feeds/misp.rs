//! MISP feeds (`<Supplier>.misp/`, a folder as MISP's feed generator writes it):
//! `manifest.json` names the events, each in `<uuid>.json` as `{"Event": {…}}`. An attribute
//! meant for detection (`to_ids: true`) of a type we look up is a record: `ip-src`, `ip-dst`,
//! `url`, `domain`, `hostname`, `md5`, `sha1`, `sha256`, and the `|`-joined composites
//! (`domain|ip` gives both; `filename|sha256` the hash, the file name as context;
//! `ip-dst|port` the address). The event's info, uuid and threat level and the attribute's
//! category and comment are context; the event's and attribute's tags are tags and choose
//! the category through [`FeedCategories`]. Attributes of the event's objects count alike.
//!
//! One event file is read at a time; its attributes are handed on as it is parsed.

use std::{borrow::Cow, collections::BTreeMap, fmt, path::Path};

use serde::{
    Deserialize, Deserializer,
    de::{IgnoredAny, Visitor},
};

use super::{
    categories::{FeedCategories, ValueKind},
    loader::Skipped,
    record::{EntrySink, FeedEntry, FeedError, Location, SkipReason, bounded, bounded_tags, named},
};

/// The event files a manifest names are this long at most, and of these characters: an
/// event is named by its UUID, and the name must not lead out of the feed's folder.
const MAX_EVENT_NAME: usize = 64;

/// Whether `name` can name an event of a manifest: its UUID, which leads nowhere else.
pub fn is_event_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_EVENT_NAME
        && name.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

#[derive(Deserialize)]
struct EventFile<'a> {
    #[serde(rename = "Event", borrow)]
    event: MispEvent<'a>,
}

#[derive(Deserialize)]
struct MispEvent<'a> {
    #[serde(default, borrow)]
    info: Cow<'a, str>,
    #[serde(default, borrow)]
    uuid: Cow<'a, str>,
    #[serde(default, deserialize_with = "number_in_text")]
    threat_level_id: i64,
    #[serde(default, rename = "Tag", borrow)]
    tags: Vec<MispTag<'a>>,
    #[serde(default, rename = "Attribute", borrow)]
    attributes: Vec<MispAttribute<'a>>,
    #[serde(default, rename = "Object", borrow)]
    objects: Vec<MispObject<'a>>,
}

#[derive(Deserialize)]
struct MispObject<'a> {
    #[serde(default, rename = "Attribute", borrow)]
    attributes: Vec<MispAttribute<'a>>,
}

#[derive(Deserialize)]
struct MispAttribute<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    value: Cow<'a, str>,
    #[serde(default)]
    to_ids: bool,
    #[serde(default, borrow)]
    category: Cow<'a, str>,
    #[serde(default, borrow)]
    comment: Cow<'a, str>,
    /// Seconds since the epoch.
    #[serde(default, deserialize_with = "number_in_text")]
    timestamp: i64,
    #[serde(default, rename = "Tag", borrow)]
    tags: Vec<MispTag<'a>>,
}

#[derive(Deserialize)]
struct MispTag<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

/// Hands each detection attribute of the MISP feed in `folder` to `each`; what it skipped.
/// `file`: the folder as reports name it.
pub fn read_folder(
    file: &str,
    folder: &Path,
    categories: &FeedCategories,
    each: &mut EntrySink<'_>,
) -> Result<Skipped, FeedError> {
    let read = |name: &str| {
        std::fs::read(folder.join(name)).map_err(|source| FeedError::Read {
            file: format!("{file}/{name}"),
            source,
        })
    };
    let manifest = read("manifest.json")?;
    let events: BTreeMap<Cow<'_, str>, IgnoredAny> = serde_json::from_slice(&manifest)
        .map_err(|e| syntax(&format!("{file}/manifest.json"), &e))?;
    let mut skipped = Skipped::default();
    for (number, uuid) in events.keys().enumerate() {
        if !is_event_name(uuid) {
            return Err(FeedError::Record {
                file: format!("{file}/manifest.json"),
                location: format!("event {}", number + 1),
                reason: "an event name is its UUID: hex digits and -".into(),
            });
        }
        let name = format!("{uuid}.json");
        let text = read(&name)?;
        let event: EventFile =
            serde_json::from_slice(&text).map_err(|e| syntax(&format!("{file}/{name}"), &e))?;
        let mut reader = EventReader {
            file,
            event: &event.event,
            categories,
            each: &mut *each,
            skipped: &mut skipped,
        };
        let attributes = (event.event.attributes.iter())
            .chain(event.event.objects.iter().flat_map(|o| &o.attributes));
        for (index, attribute) in attributes.enumerate() {
            reader.hand_on(attribute, Location::Record(index + 1))?;
        }
    }
    Ok(skipped)
}

fn syntax(file: &str, e: &serde_json::Error) -> FeedError {
    FeedError::Syntax {
        file: file.to_owned(),
        line: e.line(),
        reason: e.to_string(),
    }
}

/// One event's attributes on their way to the sink.
struct EventReader<'r, 'e, 's> {
    file: &'r str,
    event: &'r MispEvent<'e>,
    categories: &'r FeedCategories,
    each: &'r mut EntrySink<'s>,
    skipped: &'r mut Skipped,
}

impl EventReader<'_, '_, '_> {
    fn hand_on(
        &mut self,
        attribute: &MispAttribute<'_>,
        location: Location,
    ) -> Result<(), FeedError> {
        let skip = |skipped: &mut Skipped, reason: SkipReason| {
            let why = format!(
                "event {}: {}: {}",
                named(&self.event.uuid),
                named(&attribute.kind),
                reason.key()
            );
            skipped.add(self.file, location, reason, &why);
        };
        if !attribute.to_ids {
            skip(self.skipped, SkipReason::NotForDetection);
            return Ok(());
        }
        let Some(values) = values_of(&attribute.kind, &attribute.value) else {
            skip(self.skipped, SkipReason::AttributeType);
            return Ok(());
        };
        let tags = bounded_tags(
            (self.event.tags.iter())
                .chain(&attribute.tags)
                .map(|tag| &*tag.name),
        );
        let threat_level = match self.event.threat_level_id {
            1 => "High",
            2 => "Medium",
            3 => "Low",
            _ => "Undefined",
        };
        let file_name = attribute
            .kind
            .starts_with("filename|")
            .then(|| attribute.value.split_once('|').map(|(name, _)| name))
            .flatten();
        let context: Vec<(&str, &str)> = [
            ("event_info", Some(&*self.event.info)),
            ("event_uuid", Some(&*self.event.uuid)),
            ("threat_level", Some(threat_level)),
            ("misp_category", Some(&*attribute.category)),
            ("comment", Some(&*attribute.comment)),
            ("filename", file_name),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, bounded(value.filter(|v| !v.is_empty())?))))
        .collect();
        for (kind, value) in values {
            if !kind.fits(value) {
                skip(self.skipped, SkipReason::InvalidValue);
                continue;
            }
            let Some(category) = self.categories.category(&tags, kind) else {
                skip(self.skipped, SkipReason::InvalidValue);
                continue;
            };
            (self.each)(&FeedEntry {
                location,
                indicator: value,
                category: Some(category),
                kind: Some(kind.feed_type()),
                context: &context,
                tags: &tags,
                exact: false,
                last_seen: attribute.timestamp.saturating_mul(1000),
                expires_at: 0,
            })
            .map_err(|reason| FeedError::Record {
                file: self.file.to_owned(),
                location: format!("event {}: {location}", named(&self.event.uuid)),
                reason,
            })?;
        }
        Ok(())
    }
}

/// The values an attribute of MISP type `kind` names, or `None` for a type we do not look
/// up. A composite's parts are split at its first `|`.
fn values_of<'v>(kind: &str, value: &'v str) -> Option<Vec<(ValueKind, &'v str)>> {
    let address = |value: &'v str| {
        let kind = if value.contains(':') {
            ValueKind::Ipv6
        } else {
            ValueKind::Ipv4
        };
        (kind, value)
    };
    let (left, right) = value.split_once('|').unwrap_or((value, ""));
    Some(match kind {
        "ip-src" | "ip-dst" => vec![address(value)],
        "url" => vec![(ValueKind::Url, value)],
        "domain" | "hostname" => vec![(ValueKind::Domain, value)],
        "md5" => vec![(ValueKind::Md5, value)],
        "sha1" => vec![(ValueKind::Sha1, value)],
        "sha256" => vec![(ValueKind::Sha256, value)],
        "domain|ip" => vec![(ValueKind::Domain, left), address(right)],
        "hostname|port" => vec![(ValueKind::Domain, left)],
        "ip-src|port" | "ip-dst|port" => vec![address(left)],
        "filename|md5" => vec![(ValueKind::Md5, right)],
        "filename|sha1" => vec![(ValueKind::Sha1, right)],
        "filename|sha256" => vec![(ValueKind::Sha256, right)],
        _ => return None,
    })
}

/// A number MISP writes as text (`"1"`, `"1700000000"`) or as a number; 0 for text that
/// is no number.
fn number_in_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    struct Number;
    impl Visitor<'_> for Number {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number, or one as text")
        }
        fn visit_i64<E>(self, n: i64) -> Result<i64, E> {
            Ok(n)
        }
        fn visit_u64<E>(self, n: u64) -> Result<i64, E> {
            Ok(i64::try_from(n).unwrap_or(0))
        }
        fn visit_str<E>(self, text: &str) -> Result<i64, E> {
            Ok(text.trim().parse().unwrap_or(0))
        }
    }
    deserializer.deserialize_any(Number)
}

#[cfg(test)]
mod tests;
