//! What a remote STIX supplier has sent so far, kept as a bundle in the remote feed folder
//! (`<Supplier>.stix.json`), which the feed loader reads like any other. New objects
//! replace older versions of themselves (by `id`, the later `modified` wins); the file is
//! replaced whole (written beside, then renamed), so a reload never reads half of it and a
//! failed poll leaves it as it was.

use std::{collections::HashMap, io::Write, path::Path};

use serde::Deserialize;
use serde_json::value::RawValue;

/// The most objects one supplier's cache holds; a poll past it fails and changes nothing.
pub const MAX_CACHED_OBJECTS: usize = 2_000_000;
/// The most bytes of objects one supplier's cache holds, likewise.
pub const MAX_CACHED_BYTES: usize = 1 << 30;

#[derive(Deserialize)]
struct CachedBundle {
    objects: Vec<Box<RawValue>>,
}

/// The properties an object is versioned by.
#[derive(Deserialize)]
struct Version<'a> {
    #[serde(borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    modified: Option<std::borrow::Cow<'a, str>>,
}

/// Adds `objects` to the bundle at `path` (made if missing); how many were new or newer.
pub fn merge(path: &Path, supplier: &str, objects: Vec<Box<RawValue>>) -> Result<usize, String> {
    let mut kept: Vec<Box<RawValue>> = match std::fs::read(path) {
        Ok(text) => {
            serde_json::from_slice::<CachedBundle>(&text)
                .map_err(|e| format!("the cached bundle {}: {e}", path.display()))?
                .objects
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let mut at: HashMap<String, usize> = HashMap::with_capacity(kept.len());
    for (index, object) in kept.iter().enumerate() {
        if let Some(id) = version_of(object).0 {
            at.insert(id, index);
        }
    }
    let mut changed = 0;
    for object in objects {
        let (Some(id), modified) = version_of(&object) else {
            // Not a STIX object: nothing a bundle reader would take either.
            continue;
        };
        match at.get(&id) {
            Some(&index) => {
                if modified > version_of(&kept[index]).1 {
                    kept[index] = object;
                    changed += 1;
                }
            }
            None => {
                if kept.len() == MAX_CACHED_OBJECTS {
                    return Err(format!(
                        "over {MAX_CACHED_OBJECTS} objects from one supplier"
                    ));
                }
                at.insert(id, kept.len());
                kept.push(object);
                changed += 1;
            }
        }
    }
    let bytes: usize = kept.iter().map(|object| object.get().len()).sum();
    if bytes > MAX_CACHED_BYTES {
        return Err(format!(
            "over {MAX_CACHED_BYTES} bytes of objects from one supplier"
        ));
    }
    if changed > 0 {
        write(path, supplier, &kept).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(changed)
}

/// An object's id and the time of its version (ms; 0 when it has none).
fn version_of(object: &RawValue) -> (Option<String>, i64) {
    match serde_json::from_str::<Version>(object.get()) {
        Ok(version) => {
            let modified = version
                .modified
                .and_then(|m| humantime::parse_rfc3339(&m).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64);
            (version.id.map(|id| id.into_owned()), modified)
        }
        Err(_) => (None, 0),
    }
}

fn write(path: &Path, supplier: &str, objects: &[Box<RawValue>]) -> std::io::Result<()> {
    let beside = path.with_extension("json.new");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&beside)?);
    write!(
        out,
        "{{\"type\": \"bundle\", \"id\": \"bundle--xdr-{supplier}\", \"objects\": ["
    )?;
    for (index, object) in objects.iter().enumerate() {
        if index > 0 {
            out.write_all(b",\n")?;
        }
        out.write_all(object.get().as_bytes())?;
    }
    out.write_all(b"]}\n")?;
    out.into_inner()?.sync_all()?;
    std::fs::rename(beside, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn newer_versions_replace_older_ones_and_the_rest_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Cti.stix.json");
        let a1 =
            r#"{"type": "indicator", "id": "indicator--a", "modified": "2024-01-01T00:00:00Z"}"#;
        let b1 =
            r#"{"type": "indicator", "id": "indicator--b", "modified": "2024-01-01T00:00:00Z"}"#;
        assert_eq!(merge(&path, "Cti", vec![raw(a1), raw(b1)]).unwrap(), 2);
        let a2 = r#"{"type": "indicator", "id": "indicator--a", "modified": "2024-02-01T00:00:00.5Z", "revoked": true}"#;
        let a0 =
            r#"{"type": "indicator", "id": "indicator--a", "modified": "2023-01-01T00:00:00Z"}"#;
        assert_eq!(
            merge(&path, "Cti", vec![raw(a2), raw(a0), raw("5")]).unwrap(),
            1
        );
        assert_eq!(merge(&path, "Cti", vec![raw(b1)]).unwrap(), 0);
        let text = std::fs::read_to_string(&path).unwrap();
        let bundle: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(bundle["type"], "bundle");
        let objects = bundle["objects"].as_array().unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["revoked"], true);
        assert_eq!(objects[1]["id"], "indicator--b");
        assert!(!dir.path().join("Cti.stix.json.new").exists());
    }
}
