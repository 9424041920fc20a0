//! The threat-intel service: the indicator index, feeds, Internal TI, the CyberTrace TCP
//! protocol and the gRPC adapter. `main.rs` wires them; benchmarks use the index directly.

pub mod access;
pub mod cybertrace;
pub mod feeds;
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
pub mod index;
pub mod internal_ti;
pub mod metrics;
pub mod remote;
pub mod store;

use cybertrace::{EventSink, events};
use store::Reload;

/// Logs how each feed fared and sends CyberTrace's alert for it: a feed that failed is a
/// warning, its previous version stays.
pub fn report_reload(reload: &Reload, events: &EventSink) {
    for feed in &reload.feeds {
        let name = std::path::Path::new(&feed.file)
            .file_name()
            .map_or(feed.file.clone(), |n| n.to_string_lossy().into_owned());
        match &feed.error {
            None => {
                tracing::info!(file = %feed.file, supplier = %feed.supplier, indicators = feed.indicators, skipped = feed.skipped.count, "feed loaded");
                if feed.skipped.count > 0 {
                    tracing::warn!(file = %feed.file, skipped = feed.skipped.count, first = ?feed.skipped.first, by_reason = ?feed.skipped.by_reason, "feed records skipped: no lookup could match them");
                }
                let records = feed.indicators.to_string();
                events.alert(
                    events::UPDATED_FEED,
                    &[("feed", &name), ("records", &records)],
                );
            }
            Some(error) => {
                tracing::warn!(file = %feed.file, supplier = %feed.supplier, kept = feed.indicators, %error, "feed not loaded");
                events.alert(
                    events::FAILED_TO_UPDATE_FEED,
                    &[("feed", &name), ("error", error)],
                );
            }
        }
    }
    metrics::feed_indicators(reload.indicators);
    tracing::info!(
        took_ms = reload.took.as_millis() as u64,
        feeds = reload.feeds.len(),
        indicators = reload.indicators,
        "indicator index ready"
    );
}
