//! Supplier feeds: files in the feed directory, read at start and on `ReloadFeeds`.

mod batch;
mod categories;
mod csv;
mod json;
mod loader;
mod misp;
mod record;
mod stix;

pub use categories::{CategoriesError, FeedCategories};
pub use loader::{FeedReport, Skipped, load_feeds};
pub use misp::is_event_name;
pub use record::SkipReason;

/// How feeds are read, as the service is configured.
#[derive(Clone, Debug, Default)]
pub struct FeedOptions {
    /// The category of each indicator of a feed without categories (STIX, MISP), by its
    /// types or tags and the kind of its value.
    pub categories: FeedCategories,
    /// Where remote suppliers' pollers keep what they fetched, as feed files.
    pub remote_dir: Option<std::path::PathBuf>,
}
