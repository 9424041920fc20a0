//! Retention by age: events older than the collector's retention are deleted, at start and
//! then every tenth of the retention (at most hourly), off the async runtime.

use std::{sync::Arc, time::Duration};

use crate::store::EventStore;

/// Deletes events older than `retention` from `store` for as long as the service runs.
pub async fn run(store: Arc<dyn EventStore>, retention: Duration) {
    let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        let cutoff = std::time::SystemTime::now()
            .checked_sub(retention)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.delete_older_than(cutoff)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(deleted)) => tracing::info!(deleted, ?retention, "events past retention deleted"),
            Ok(Err(error)) => tracing::warn!(%error, "events past retention could not be deleted"),
            Err(error) => tracing::warn!(%error, "the retention task failed"),
        }
    }
}
