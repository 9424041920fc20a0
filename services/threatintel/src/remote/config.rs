//! Remote suppliers as the operator configures them (`--suppliers FILE`, TOML):
//!
//! ```toml
//! [[taxii]]
//! supplier = "OpenCTI"
//! api_root = "https://cti.example/taxii2/api1/"
//! collection = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
//! credentials = "opencti"   # <data-dir>/credentials/opencti.toml: user, password
//! ca = "opencti-ca"         # <data-dir>/credentials/opencti-ca.pem
//! poll_interval = "10m"
//!
//! [[misp]]
//! supplier = "Circl"
//! url = "https://www.circl.lu/doc/misp/feed-osint/"   # the folder of manifest.json
//! ca = "circl-ca"
//! poll_interval = "1h"
//! ```
//!
//! Credentials and CAs are named, never given as paths: a name is looked up in the data
//! directory's `credentials/` folder, so no setting can make the service read another file.

use std::{path::Path, time::Duration};

use serde::{Deserialize, Serialize};
use xdr_mesh::http_client::HttpClient;

/// The shortest poll interval: a poll costs the server a query.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(600);
/// The longest source URL taken.
const MAX_URL_BYTES: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {reason}")]
    File { file: String, reason: String },
    #[error("supplier {supplier}: {reason}")]
    Supplier { supplier: String, reason: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppliersFile {
    #[serde(default)]
    taxii: Vec<TaxiiEntry>,
    #[serde(default)]
    misp: Vec<MispEntry>,
}

/// A MISP feed as the suppliers file or `UpsertSupplier` gives it, before it is checked.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MispEntry {
    pub supplier: String,
    pub url: String,
    #[serde(default)]
    pub credentials: Option<String>,
    #[serde(default)]
    pub ca: Option<String>,
    #[serde(default)]
    pub poll_interval: Option<String>,
}

/// A remote supplier's settings before they are checked: what is persisted for one an
/// operator added with `UpsertSupplier` (names of credentials, never their contents).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceEntry {
    Taxii(TaxiiEntry),
    Misp(MispEntry),
}

impl SourceEntry {
    pub fn supplier(&self) -> &str {
        match self {
            SourceEntry::Taxii(entry) => &entry.supplier,
            SourceEntry::Misp(entry) => &entry.supplier,
        }
    }

    /// The source ready to poll, its credentials and CA read from `credentials_dir`.
    pub fn build(self, credentials_dir: &Path) -> Result<RemoteSource, ConfigError> {
        match self {
            SourceEntry::Taxii(entry) => taxii_source(entry, credentials_dir),
            SourceEntry::Misp(entry) => misp_source(entry, credentials_dir),
        }
    }
}

/// A TAXII collection as the suppliers file or `UpsertSupplier` gives it, before it is
/// checked.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaxiiEntry {
    pub supplier: String,
    pub api_root: String,
    pub collection: String,
    #[serde(default)]
    pub credentials: Option<String>,
    #[serde(default)]
    pub ca: Option<String>,
    #[serde(default)]
    pub poll_interval: Option<String>,
}

/// A remote supplier to poll, ready to use.
#[derive(Clone, Debug)]
pub struct RemoteSource {
    pub supplier: String,
    pub kind: SourceKind,
    pub credentials: Option<Credentials>,
    pub ca_pem: Option<String>,
    pub poll_interval: Duration,
}

#[derive(Clone, Debug)]
pub enum SourceKind {
    /// A TAXII 2.1 collection: the API root (ending in `/`) and the collection's id.
    Taxii {
        api_root: url::Url,
        collection: String,
    },
    /// A MISP feed: the folder (ending in `/`) holding `manifest.json` and the events.
    Misp { url: url::Url },
}

impl RemoteSource {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            SourceKind::Taxii { .. } => "taxii",
            SourceKind::Misp { .. } => "misp",
        }
    }

    /// Where it is polled, without credentials.
    pub fn display(&self) -> String {
        match &self.kind {
            SourceKind::Taxii {
                api_root,
                collection,
            } => format!(
                "{}collections/{collection}/",
                xdr_mesh::http_client::display_url(api_root)
            ),
            SourceKind::Misp { url } => xdr_mesh::http_client::display_url(url),
        }
    }
}

/// HTTP Basic credentials; never logged (`Debug` hides the password).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ user: {:?}, password: <hidden> }}",
            self.user
        )
    }
}

/// The remote suppliers `file` configures; credentials and CAs from `credentials_dir`.
pub fn read(file: &Path, credentials_dir: &Path) -> Result<Vec<RemoteSource>, ConfigError> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError::File {
        file: name.clone(),
        reason: e.to_string(),
    })?;
    let parsed: SuppliersFile = toml::from_str(&text).map_err(|e| ConfigError::File {
        file: name.clone(),
        reason: e.message().to_owned(),
    })?;
    let mut seen = std::collections::BTreeSet::new();
    let taxii = (parsed.taxii.into_iter()).map(|entry| taxii_source(entry, credentials_dir));
    let misp = (parsed.misp.into_iter()).map(|entry| misp_source(entry, credentials_dir));
    taxii
        .chain(misp)
        .map(|source| {
            let source = source?;
            if !seen.insert(source.supplier.clone()) {
                return Err(ConfigError::Supplier {
                    supplier: source.supplier,
                    reason: "configured twice".into(),
                });
            }
            Ok(source)
        })
        .collect()
}

fn taxii_source(entry: TaxiiEntry, credentials_dir: &Path) -> Result<RemoteSource, ConfigError> {
    let refuse = |reason: String| ConfigError::Supplier {
        supplier: entry.supplier.clone(),
        reason,
    };
    let api_root = folder_url("api_root", &entry.api_root).map_err(&refuse)?;
    let collection_fine = !entry.collection.is_empty()
        && entry.collection.len() <= 128
        && (entry.collection.bytes()).all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !collection_fine {
        return Err(refuse("collection: an id of letters, digits and -".into()));
    }
    let kind = SourceKind::Taxii {
        api_root,
        collection: entry.collection,
    };
    let settings = (entry.credentials.as_deref(), entry.ca.as_deref());
    source(
        entry.supplier,
        kind,
        settings,
        entry.poll_interval,
        credentials_dir,
    )
}

fn misp_source(entry: MispEntry, credentials_dir: &Path) -> Result<RemoteSource, ConfigError> {
    let url = folder_url("url", &entry.url).map_err(|reason| ConfigError::Supplier {
        supplier: entry.supplier.clone(),
        reason,
    })?;
    let kind = SourceKind::Misp { url };
    let settings = (entry.credentials.as_deref(), entry.ca.as_deref());
    source(
        entry.supplier,
        kind,
        settings,
        entry.poll_interval,
        credentials_dir,
    )
}

/// `text` as the URL of a folder (ending in `/`): http or https, a host, no credentials.
fn folder_url(setting: &str, text: &str) -> Result<url::Url, String> {
    if text.len() > MAX_URL_BYTES {
        return Err(format!("{setting}: longer than {MAX_URL_BYTES} bytes"));
    }
    let mut url = url::Url::parse(text).map_err(|e| format!("{setting}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{setting}: an http or https URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{setting}: credentials go in `credentials`, not in the URL"
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// A source of `kind` with its named credentials and CA read, its settings checked.
fn source(
    supplier: String,
    kind: SourceKind,
    (credentials, ca): (Option<&str>, Option<&str>),
    poll_interval: Option<String>,
    credentials_dir: &Path,
) -> Result<RemoteSource, ConfigError> {
    let refuse = |reason: String| ConfigError::Supplier {
        supplier: supplier.clone(),
        reason,
    };
    check_supplier_name(&supplier).map_err(|e| refuse(e.into()))?;
    let credentials = credentials
        .map(|name| {
            let text = read_named(credentials_dir, name, "toml").map_err(&refuse)?;
            toml::from_str::<Credentials>(&text)
                .map_err(|e| refuse(format!("credentials {name}: {}", e.message())))
        })
        .transpose()?;
    let ca_pem = ca
        .map(|name| {
            let pem = read_named(credentials_dir, name, "pem").map_err(&refuse)?;
            // Checked here, so a bad CA is refused when it is set, not found at the poll.
            HttpClient::new(Some(&pem), Duration::from_secs(1), 0, "check")
                .map_err(|e| refuse(format!("credentials/{name}.pem: {e}")))?;
            Ok(pem)
        })
        .transpose()?;
    let url = match &kind {
        SourceKind::Taxii { api_root, .. } => api_root,
        SourceKind::Misp { url } => url,
    };
    if url.scheme() == "https" && ca_pem.is_none() {
        return Err(refuse("an https URL needs `ca`".into()));
    }
    let poll_interval = match poll_interval {
        // Its parser's errors quote what they did not understand: kept short.
        Some(text) if text.len() > 32 => {
            return Err(refuse("poll_interval: a duration such as 10m".into()));
        }
        Some(text) => {
            humantime::parse_duration(&text).map_err(|e| refuse(format!("poll_interval: {e}")))?
        }
        None => DEFAULT_POLL_INTERVAL,
    };
    if poll_interval < MIN_POLL_INTERVAL {
        return Err(refuse(format!(
            "poll_interval: at least {MIN_POLL_INTERVAL:?}"
        )));
    }
    Ok(RemoteSource {
        supplier,
        kind,
        credentials,
        ca_pem,
        poll_interval,
    })
}

/// A supplier's name as feed files and reports carry it.
pub fn check_supplier_name(name: &str) -> Result<(), &'static str> {
    let fine = !name.is_empty()
        && name.len() <= 128
        && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if fine {
        Ok(())
    } else {
        Err("supplier: 1 to 128 letters, digits, _ and -")
    }
}

/// The text of `<dir>/<name>.<extension>`, `name` checked to name a file of that folder.
fn read_named(dir: &Path, name: &str, extension: &str) -> Result<String, String> {
    let fine = !name.is_empty()
        && name.len() <= 64
        && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if !fine {
        return Err(format!(
            "`{name}`: a credentials name is 1 to 64 letters, digits, _ and -"
        ));
    }
    std::fs::read_to_string(dir.join(format!("{name}.{extension}")))
        .map_err(|e| format!("credentials/{name}.{extension}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> Result<Vec<RemoteSource>, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("credentials");
        std::fs::create_dir(&credentials).unwrap();
        std::fs::write(
            credentials.join("feeds.toml"),
            "user = \"feeds\"\npassword = \"s3cret\"\n",
        )
        .unwrap();
        std::fs::write(credentials.join("garbled.pem"), "not a certificate").unwrap();
        let file = dir.path().join("suppliers.toml");
        std::fs::write(&file, text).unwrap();
        read(&file, &credentials)
    }

    #[test]
    fn a_taxii_supplier_reads_with_its_named_credentials() {
        let sources = read_text(
            "[[taxii]]\nsupplier = \"Cti\"\napi_root = \"http://127.0.0.1:5000/api1\"\n\
             collection = \"c-1\"\ncredentials = \"feeds\"\npoll_interval = \"30s\"\n",
        )
        .unwrap();
        assert_eq!(sources.len(), 1);
        assert_eq!(
            sources[0].display(),
            "http://127.0.0.1:5000/api1/collections/c-1/"
        );
        assert_eq!(sources[0].poll_interval, Duration::from_secs(30));
        let credentials = sources[0].credentials.as_ref().unwrap();
        assert_eq!(credentials.password, "s3cret");
        assert!(!format!("{sources:?}").contains("s3cret"));
    }

    #[test]
    fn bad_settings_are_refused_naming_the_supplier_and_the_setting() {
        for (entry, expected) in [
            (
                "supplier = \"Cti\"\napi_root = \"http://h/a/\"\ncollection = \"c\"\ncredentials = \"../etc/passwd\"",
                "supplier Cti: `../etc/passwd`: a credentials name is 1 to 64 letters, digits, _ and -",
            ),
            (
                "supplier = \"Cti\"\napi_root = \"http://h/a/\"\ncollection = \"c\"\ncredentials = \"absent\"",
                "supplier Cti: credentials/absent.toml: No such file or directory (os error 2)",
            ),
            (
                "supplier = \"Cti\"\napi_root = \"https://h/a/\"\ncollection = \"c\"",
                "supplier Cti: an https URL needs `ca`",
            ),
            (
                "supplier = \"Cti\"\napi_root = \"https://h/a/\"\ncollection = \"c\"\nca = \"garbled\"",
                "supplier Cti: credentials/garbled.pem: ca: no CA certificate (PEM) in it",
            ),
            (
                "supplier = \"Cti\"\napi_root = \"http://u:p@h/a/\"\ncollection = \"c\"",
                "supplier Cti: api_root: credentials go in `credentials`, not in the URL",
            ),
            (
                "supplier = \"a/b\"\napi_root = \"http://h/a/\"\ncollection = \"c\"",
                "supplier a/b: supplier: 1 to 128 letters, digits, _ and -",
            ),
            (
                "supplier = \"Cti\"\napi_root = \"http://h/a/\"\ncollection = \"c/../x\"",
                "supplier Cti: collection: an id of letters, digits and -",
            ),
            (
                "supplier = \"Cti\"\napi_root = \"http://h/a/\"\ncollection = \"c\"\npoll_interval = \"10ms\"",
                "supplier Cti: poll_interval: at least 1s",
            ),
        ] {
            let error = read_text(&format!("[[taxii]]\n{entry}\n")).unwrap_err();
            assert_eq!(error.to_string(), expected);
        }
        let twice = "[[taxii]]\nsupplier = \"A\"\napi_root = \"http://h/\"\ncollection = \"c\"\n";
        let error = read_text(&format!("{twice}{twice}")).unwrap_err();
        assert_eq!(error.to_string(), "supplier A: configured twice");
        let error = read_text("[[taxii]]\nsupplier = \"A\"\ncolour = 1\n").unwrap_err();
        assert!(error.to_string().contains("colour"), "{error}");
    }
}
