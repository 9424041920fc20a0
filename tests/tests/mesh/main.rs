//! Workspace integration tests: the real binaries over real mTLS, driven by grpcurl, curl and
//! xdrctl. One test binary (one link), one module per story.

mod authorization;
mod bench;
mod bounded_errors;
mod catalog_reads;
mod collector_durability;
mod collector_ingest;
mod collector_search;
mod compose;
mod configuration;
mod cybertrace_source;
mod enrichment;
mod gateway;
mod gateway_https;
mod gateway_input;
mod gateway_openapi;
mod gateway_people;
mod load_shedding;
mod malformed_requests;
mod metrics;
mod people;
mod reflection_and_health;
mod saved_filter_limits;
mod seed_cybertrace;
mod shutdown;
mod silent_connections;
mod store_failures;
mod stream_framing;
mod threatintel_cybertrace;
mod threatintel_events;
mod threatintel_feeds;
mod threatintel_internal_ti;
mod threatintel_lookup;
mod tls_refusals;
mod url_indicators;
mod xdrctl;
