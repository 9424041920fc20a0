//! One poll of a MISP feed served over HTTP(S): `manifest.json` from the feed's URL, then
//! only the events whose manifest `timestamp` changed since the last poll (or that are new),
//! each `<uuid>.json`, into the supplier's mirror folder `<Supplier>.misp/` in the remote
//! feed folder, which the loader reads like a local MISP feed. Events gone from the manifest
//! are removed from the mirror, and the new manifest is written last: a poll that fails
//! part-way leaves the previous manifest, so the events it names are loaded as before.

use std::{collections::BTreeMap, path::Path};

use bytes::Bytes;
use http::Method;
use serde::Deserialize;
use xdr_mesh::http_client::HttpClient;

use super::config::RemoteSource;

/// The most events a manifest may name.
pub const MAX_EVENTS: usize = 100_000;
/// The most bytes of events one poll fetches; past it the poll fails (the manifest is not
/// written, so the events already fetched are fetched again: raise it rather than resume).
pub const MAX_POLL_BYTES: usize = 1 << 30;

/// What the manifest says of an event: only its timestamp is compared.
#[derive(Deserialize, PartialEq)]
struct ManifestEntry {
    #[serde(default, deserialize_with = "any_text")]
    timestamp: String,
}

/// Fetches what changed in the feed at `url` into `mirror`; how many events changed.
pub async fn poll(
    client: &HttpClient,
    source: &RemoteSource,
    url: &url::Url,
    mirror: &Path,
) -> Result<usize, String> {
    let headers = super::request_headers(source)?;
    let get = |name: String| {
        let headers = headers.clone();
        async move {
            let target = url.join(&name).map_err(|e| format!("{name}: {e}"))?;
            let answer = client
                .exchange(Method::GET, &target, headers, Bytes::new())
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            super::check_status(answer.status).map_err(|e| format!("{name}: {e}"))?;
            Ok::<Bytes, String>(answer.body)
        }
    };
    let manifest_text = get("manifest.json".to_owned()).await?;
    let manifest: BTreeMap<String, ManifestEntry> = serde_json::from_slice(&manifest_text)
        .map_err(|e| format!("manifest.json: not a MISP manifest: {e}"))?;
    if manifest.len() > MAX_EVENTS {
        return Err(format!("manifest.json: over {MAX_EVENTS} events"));
    }
    for uuid in manifest.keys() {
        if !crate::feeds::is_event_name(uuid) {
            return Err("manifest.json: an event name is its UUID: hex digits and -".into());
        }
    }
    std::fs::create_dir_all(mirror).map_err(|e| format!("{}: {e}", mirror.display()))?;
    let mirrored: BTreeMap<String, ManifestEntry> = std::fs::read(mirror.join("manifest.json"))
        .ok()
        .and_then(|text| serde_json::from_slice(&text).ok())
        .unwrap_or_default();
    let (mut changed, mut fetched) = (0, 0);
    for (uuid, entry) in &manifest {
        let file = mirror.join(format!("{uuid}.json"));
        if mirrored.get(uuid) == Some(entry) && file.exists() {
            continue;
        }
        let event = get(format!("{uuid}.json")).await?;
        fetched += event.len();
        if fetched > MAX_POLL_BYTES {
            return Err(format!("over {MAX_POLL_BYTES} bytes of events in one poll"));
        }
        write_beside(&file, &event).map_err(|e| format!("{}: {e}", file.display()))?;
        changed += 1;
    }
    let gone: Vec<&String> = (mirrored.keys())
        .filter(|uuid| !manifest.contains_key(*uuid))
        .collect();
    let manifest_file = mirror.join("manifest.json");
    if changed > 0 || !gone.is_empty() || !manifest_file.exists() {
        write_beside(&manifest_file, &manifest_text)
            .map_err(|e| format!("{}: {e}", manifest_file.display()))?;
        for uuid in &gone {
            let _ = std::fs::remove_file(mirror.join(format!("{uuid}.json")));
        }
    }
    Ok(changed + gone.len())
}

/// Writes `bytes` to `path` whole: beside it first, then renamed over it.
fn write_beside(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let beside = path.with_extension("json.new");
    std::fs::write(&beside, bytes)?;
    std::fs::rename(beside, path)
}

/// A manifest timestamp as text, whether the feed wrote it as text or as a number.
fn any_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    })
}
