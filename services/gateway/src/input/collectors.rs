//! What the gateway needs to know of a collector to take its HTTP input — its id, its
//! delimiter, whether it takes HTTP input at all — asked of the collector
//! service and kept a few seconds, so a burst of posts costs one lookup and a changed
//! collector applies within seconds.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use xdr_mesh::replicas::Balanced as Channel;
use xdr_proto::pb::{
    CollectorConfig, Delimiter, GetCollectorRequest, Transport, collector_client::CollectorClient,
};

use crate::problem::Problem;

/// How long a collector's settings (or its absence) are kept.
const KEPT_FOR: Duration = Duration::from_secs(5);
/// Collectors kept at most; past it the oldest half is forgotten.
const MAX_KEPT: usize = 4096;
/// Longest a lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// A collector that takes HTTP input, as the gateway sees it.
#[derive(Clone, Debug)]
pub struct InputCollector {
    pub id: String,
    pub delimiter: u8,
    /// The SHA-256 (hex) of the token a source must send, when the collector has one.
    pub token_sha256: Option<String>,
}

impl InputCollector {
    fn of(config: &CollectorConfig) -> Result<Self, Problem> {
        if Transport::try_from(config.transport) != Ok(Transport::Http) {
            return Err(Problem::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "collector {:?} takes no HTTP input (its transport is gRPC)",
                    config.name
                ),
            ));
        }
        let delimiter = match Delimiter::try_from(config.delimiter) {
            Ok(Delimiter::Tab) => b'\t',
            Ok(Delimiter::Nul) => 0,
            _ => b'\n',
        };
        Ok(InputCollector {
            id: config.id.clone(),
            delimiter,
            token_sha256: Some(config.input_token_sha256.clone()).filter(|d| !d.is_empty()),
        })
    }
}

type Found = Result<InputCollector, Problem>;

/// Collectors looked up by the key a path names (an id, or `tenant/name`).
pub struct Collectors {
    client: CollectorClient<Channel>,
    kept: Mutex<HashMap<(String, String), (Instant, Found)>>,
}

impl Collectors {
    pub fn new(channel: Channel) -> Self {
        Collectors {
            client: CollectorClient::new(channel),
            kept: Mutex::default(),
        }
    }

    /// The collector `id` (its id, or its name in `tenant`).
    pub async fn find(&self, id: &str, tenant: &str) -> Found {
        let key = (id.to_owned(), tenant.to_owned());
        if let Some((at, found)) = self.kept.lock().expect("not poisoned").get(&key)
            && at.elapsed() < KEPT_FOR
        {
            return found.clone();
        }
        let mut request = tonic::Request::new(GetCollectorRequest {
            id: id.to_owned(),
            tenant: tenant.to_owned(),
        });
        request.set_timeout(LOOKUP_TIMEOUT);
        let found = match self.client.clone().get_collector(request).await {
            Ok(config) => InputCollector::of(config.get_ref()),
            Err(status) => Err(Problem::from_status(&status)),
        };
        // A collector that could not be asked is not remembered as missing.
        let lasting = match &found {
            Ok(_) => true,
            Err(problem) => problem.status == axum::http::StatusCode::NOT_FOUND,
        };
        if lasting {
            let mut kept = self.kept.lock().expect("not poisoned");
            if kept.len() >= MAX_KEPT {
                let now = Instant::now();
                kept.retain(|_, (at, _)| now.duration_since(*at) < KEPT_FOR);
                if kept.len() >= MAX_KEPT {
                    kept.clear();
                }
            }
            kept.insert(key, (Instant::now(), found.clone()));
        }
        found
    }
}
