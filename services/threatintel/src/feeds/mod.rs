//! Supplier feeds: files in the feed directory, read at start and on `ReloadFeeds`.

mod batch;
mod csv;
mod json;
mod loader;
mod record;

pub use loader::{FeedReport, load_feeds};
