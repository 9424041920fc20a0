//! The threat-intel service: the indicator index, feeds, Internal TI, the CyberTrace TCP
//! protocol and the gRPC adapter. `main.rs` wires them; benchmarks use the index directly.

pub mod access;
pub mod cybertrace;
pub mod feeds;
pub mod grpc;
pub mod index;
pub mod internal_ti;
pub mod store;

use store::Reload;

/// Logs how each feed fared: a feed that failed is a warning, its previous version stays.
pub fn log_feed_reports(reload: &Reload) {
    for feed in &reload.feeds {
        match &feed.error {
            None => {
                tracing::info!(file = %feed.file, supplier = %feed.supplier, indicators = feed.indicators, "feed loaded")
            }
            Some(error) => {
                tracing::warn!(file = %feed.file, supplier = %feed.supplier, kept = feed.indicators, %error, "feed not loaded")
            }
        }
    }
    tracing::info!(
        took_ms = reload.took.as_millis() as u64,
        feeds = reload.feeds.len(),
        indicators = reload.indicators,
        "indicator index ready"
    );
}
