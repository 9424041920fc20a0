//! Remote suppliers: a poller per TAXII 2.1 collection or MISP feed the operator configured.
//! A poll fetches what changed since the last one into the supplier's copy in the remote
//! feed folder (a cached bundle, a mirrored MISP folder) and reloads the feeds — a new index
//! built beside the old and swapped in, as any reload. A failed poll changes nothing (the previous records stay),
//! is reported as `KL_ALERT_FailedToUpdateFeed`, and is retried with a growing backoff.

pub mod cache;
pub mod config;
pub mod misp_http;
pub mod taxii;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use base64::Engine;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use xdr_mesh::{http_client::HttpClient, shutdown::CancellationToken};

use crate::{
    cybertrace::{EventSink, events},
    report_reload,
    store::{IndicatorStore, now_ms},
};
use config::{RemoteSource, SourceEntry, SourceKind};

/// One exchange with a supplier's server at most this long: a server that drips its answer
/// is cut off here.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest answer read (a TAXII page, a MISP manifest or event).
const MAX_ANSWER_BYTES: usize = 64 << 20;
/// The first retry after a failed poll; each further failure doubles it, up to the poll
/// interval.
const FIRST_RETRY: Duration = Duration::from_secs(2);

/// How each remote supplier's polling goes, by supplier.
#[derive(Clone, Default)]
pub struct PollStatuses(Arc<Mutex<BTreeMap<String, PollStatus>>>);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollStatus {
    pub kind: &'static str,
    /// Where it polls, without credentials.
    pub source: String,
    /// Milliseconds since the epoch of the last poll's end, and of the last that succeeded.
    pub last_poll_ms: i64,
    pub last_success_ms: i64,
    pub last_error: Option<String>,
}

impl PollStatuses {
    pub fn snapshot(&self) -> BTreeMap<String, PollStatus> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, supplier: &str, change: impl FnOnce(&mut PollStatus)) {
        let mut statuses = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        change(statuses.entry(supplier.to_owned()).or_default());
    }
}

/// The pollers: those of the suppliers file, and those operators added with
/// `UpsertSupplier` (persisted, so a restart polls them again).
pub struct Pollers {
    statuses: PollStatuses,
    /// Each running poller's stop, by supplier.
    running: Mutex<BTreeMap<String, CancellationToken>>,
    /// Held by a supplier's poller through each poll, and by whoever removes the supplier:
    /// a poller replaced or removed mid-poll finishes that poll before the next one starts
    /// or its files go, so no two polls merge into one cache and none writes after removal.
    busy: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Suppliers the suppliers file configures: changed there, not over the API.
    from_file: BTreeSet<String>,
    remote_dir: PathBuf,
    credentials_dir: PathBuf,
    store: Arc<IndicatorStore>,
    events: EventSink,
    shutdown: CancellationToken,
}

/// Why a remote source cannot be set as asked.
#[derive(Debug, thiserror::Error)]
pub enum SourceChangeError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} is polled as the suppliers file says: change it there")]
    FromFile(String),
    #[error("at most {MAX_REMOTE_SUPPLIERS} remote suppliers")]
    TooMany,
    #[error(transparent)]
    Store(#[from] crate::internal_ti::StoreError),
}

/// The most remote suppliers polled at once.
pub const MAX_REMOTE_SUPPLIERS: usize = 256;

/// Where the pollers keep what they fetch, and where named credentials are read.
pub struct PollerDirs {
    pub remote: PathBuf,
    pub credentials: PathBuf,
}

impl Pollers {
    /// Starts a poller for each of `from_file` and for each source operators added.
    pub fn start(
        from_file: Vec<RemoteSource>,
        dirs: PollerDirs,
        store: Arc<IndicatorStore>,
        events: EventSink,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let pollers = Arc::new(Pollers {
            statuses: PollStatuses::default(),
            running: Mutex::new(BTreeMap::new()),
            busy: Mutex::new(BTreeMap::new()),
            from_file: from_file.iter().map(|s| s.supplier.clone()).collect(),
            remote_dir: dirs.remote,
            credentials_dir: dirs.credentials,
            store,
            events,
            shutdown,
        });
        for source in from_file {
            pollers.run(source);
        }
        let added = pollers.store.remote_sources().unwrap_or_else(|error| {
            tracing::warn!(%error, "reading the remote suppliers operators added");
            Vec::new()
        });
        for (supplier, settings) in added {
            if pollers.from_file.contains(&supplier) {
                tracing::warn!(%supplier, "the suppliers file configures it: its added settings are not used");
                continue;
            }
            let built = serde_json::from_str::<SourceEntry>(&settings)
                .map_err(|e| e.to_string())
                .and_then(|entry| {
                    entry
                        .build(&pollers.credentials_dir)
                        .map_err(|e| e.to_string())
                });
            match built {
                Ok(source) => pollers.run(source),
                Err(error) => pollers.statuses.update(&supplier, |status| {
                    status.last_error = Some(error);
                }),
            }
        }
        pollers
    }

    pub fn statuses(&self) -> BTreeMap<String, PollStatus> {
        self.statuses.snapshot()
    }

    /// Polls `entry` from now on in place of what its supplier polled, and persists it
    /// (blocking: reads the credentials, writes the store).
    pub fn set(&self, entry: SourceEntry) -> Result<(), SourceChangeError> {
        let supplier = entry.supplier().to_owned();
        if self.from_file.contains(&supplier) {
            return Err(SourceChangeError::FromFile(supplier));
        }
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if running.len() >= MAX_REMOTE_SUPPLIERS && !running.contains_key(&supplier) {
            return Err(SourceChangeError::TooMany);
        }
        drop(running);
        let settings = serde_json::to_string(&entry).expect("settings serialize");
        let source = entry
            .build(&self.credentials_dir)
            .map_err(|e| SourceChangeError::Invalid(e.to_string()))?;
        self.store.set_remote_source(&supplier, Some(&settings))?;
        self.run(source);
        Ok(())
    }

    /// Stops polling `supplier` and forgets what it fetched (blocking: writes the store and
    /// reloads); whether it was polled.
    pub fn remove(&self, supplier: &str) -> Result<bool, SourceChangeError> {
        if self.from_file.contains(supplier) {
            return Err(SourceChangeError::FromFile(supplier.to_owned()));
        }
        self.store.set_remote_source(supplier, None)?;
        let stopped = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(supplier);
        if let Some(stop) = &stopped {
            stop.cancel();
        }
        // A poll in flight ends before the files go (blocking: called off the runtime).
        let _busy = self.busy_lock(supplier).blocking_lock_owned();
        let known = (self
            .statuses
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
        .remove(supplier)
        .is_some();
        if stopped.is_none() && !known {
            return Ok(false);
        }
        for name in [
            format!("{supplier}.stix.json"),
            format!("{supplier}.taxii-state"),
        ] {
            let _ = std::fs::remove_file(self.remote_dir.join(name));
        }
        let _ = std::fs::remove_dir_all(self.remote_dir.join(format!("{supplier}.misp")));
        let reload = self.store.reload()?;
        report_reload(&reload, &self.events);
        Ok(true)
    }

    fn busy_lock(&self, supplier: &str) -> Arc<tokio::sync::Mutex<()>> {
        (self.busy.lock().unwrap_or_else(PoisonError::into_inner))
            .entry(supplier.to_owned())
            .or_default()
            .clone()
    }

    /// Starts polling `source`, stopping the poller its supplier had.
    fn run(&self, source: RemoteSource) {
        let stop = self.shutdown.child_token();
        let previous = (self.running.lock().unwrap_or_else(PoisonError::into_inner))
            .insert(source.supplier.clone(), stop.clone());
        if let Some(previous) = previous {
            previous.cancel();
        }
        self.statuses.update(&source.supplier, |status| {
            *status = PollStatus {
                kind: source.kind_name(),
                source: source.display(),
                ..PollStatus::default()
            };
        });
        let poller = Poller {
            busy: self.busy_lock(&source.supplier),
            source,
            remote_dir: self.remote_dir.clone(),
            store: self.store.clone(),
            events: self.events.clone(),
            statuses: self.statuses.clone(),
        };
        tokio::spawn(poller.run(stop));
    }
}

struct Poller {
    source: RemoteSource,
    busy: Arc<tokio::sync::Mutex<()>>,
    remote_dir: PathBuf,
    store: Arc<IndicatorStore>,
    events: EventSink,
    statuses: PollStatuses,
}

impl Poller {
    async fn run(self, shutdown: CancellationToken) {
        let supplier = self.source.supplier.clone();
        let client = match HttpClient::new(
            self.source.ca_pem.as_deref(),
            EXCHANGE_TIMEOUT,
            MAX_ANSWER_BYTES,
            "xdr-threatintel",
        ) {
            Ok(client) => client,
            Err(error) => {
                // The CA does not parse: nothing to retry until the operator fixes it.
                self.failed(&error.to_string());
                return;
            }
        };
        let mut failures = 0u32;
        loop {
            let polled = {
                let _busy = self.busy.lock().await;
                if shutdown.is_cancelled() {
                    return;
                }
                self.poll_once(&client).await
            };
            if shutdown.is_cancelled() {
                // Replaced or removed while it polled: what it says is no longer news.
                return;
            }
            let wait = match polled {
                Ok(()) => {
                    let now = now_ms();
                    self.statuses.update(&supplier, |status| {
                        status.last_poll_ms = now;
                        status.last_success_ms = now;
                        status.last_error = None;
                    });
                    failures = 0;
                    self.source.poll_interval
                }
                Err(error) => {
                    self.failed(&error);
                    failures = failures.saturating_add(1);
                    FIRST_RETRY
                        .saturating_mul(2u32.saturating_pow(failures - 1))
                        .min(self.source.poll_interval)
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => {
                    tracing::debug!(%supplier, "poller stopped");
                    return;
                }
            }
        }
    }

    /// One poll: fetch what changed, reload when something did.
    async fn poll_once(&self, client: &HttpClient) -> Result<(), String> {
        let supplier = &self.source.supplier;
        let changed = match &self.source.kind {
            SourceKind::Taxii {
                api_root,
                collection,
            } => self.poll_taxii(client, (api_root, collection)).await?,
            SourceKind::Misp { url } => {
                let mirror = self.remote_dir.join(format!("{supplier}.misp"));
                misp_http::poll(client, &self.source, url, &mirror).await?
            }
        };
        tracing::info!(%supplier, changed, "polled");
        if changed > 0 {
            let store = self.store.clone();
            let reload = tokio::task::spawn_blocking(move || store.reload())
                .await
                .map_err(|e| format!("reloading: {e}"))?
                .map_err(|e| format!("reloading: {e}"))?;
            report_reload(&reload, &self.events);
        }
        Ok(())
    }

    /// Fetches what the collection added since the last poll into the cached bundle; how
    /// many objects were new or newer.
    async fn poll_taxii(
        &self,
        client: &HttpClient,
        collection: (&url::Url, &str),
    ) -> Result<usize, String> {
        let supplier = &self.source.supplier;
        let state = self.remote_dir.join(format!("{supplier}.taxii-state"));
        let added_after = std::fs::read_to_string(&state)
            .ok()
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty());
        let fetched = taxii::poll(client, &self.source, collection, added_after).await?;
        let changed = if fetched.objects.is_empty() {
            0
        } else {
            let bundle = self.remote_dir.join(format!("{supplier}.stix.json"));
            let (dir, name) = (self.remote_dir.clone(), supplier.clone());
            tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                cache::merge(&bundle, &name, fetched.objects)
            })
            .await
            .map_err(|e| format!("merging: {e}"))??
        };
        // The cache holds what was fetched before the state says so: a crash in between
        // fetches it again, and the merge takes it once.
        if let Some(added_after) = &fetched.added_after {
            write_state(&state, added_after).map_err(|e| format!("{}: {e}", state.display()))?;
        }
        Ok(changed)
    }

    fn failed(&self, error: &str) {
        let supplier = &self.source.supplier;
        tracing::warn!(%supplier, %error, "poll failed; the previous records stay");
        self.events.alert(
            events::FAILED_TO_UPDATE_FEED,
            &[("feed", supplier), ("error", error)],
        );
        let now = now_ms();
        self.statuses.update(supplier, |status| {
            status.last_poll_ms = now;
            status.last_error = Some(error.to_owned());
        });
    }
}

/// The headers every request to `source` carries: its credentials, as HTTP Basic.
fn request_headers(source: &RemoteSource) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    if let Some(credentials) = &source.credentials {
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", credentials.user, credentials.password));
        let mut value = HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|_| "credentials: not valid in an HTTP header".to_owned())?;
        value.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, value);
    }
    Ok(headers)
}

/// A status other than 200 as the error a poll reports.
fn check_status(status: StatusCode) -> Result<(), String> {
    match status {
        StatusCode::OK => Ok(()),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(format!(
            "the server refused the credentials (HTTP {})",
            status.as_u16()
        )),
        status => Err(format!("HTTP status {}", status.as_u16())),
    }
}

fn write_state(path: &Path, added_after: &str) -> std::io::Result<()> {
    let beside = path.with_extension("taxii-state.new");
    std::fs::write(&beside, added_after)?;
    std::fs::rename(beside, path)
}
