//! What the fuzz targets in `fuzz/` run, and the replay of their corpora as tests (seconds):
//!
//! - [`requests`]: bytes decoded as one of this service's gRPC requests, then the checks and
//!   lookups its handler runs; every error message must stay short.
//! - [`cybertrace_session`]: bytes sent on a CyberTrace connection that asked for finished
//!   events; every line must get exactly one `LookupFinished`, whatever it holds.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, OnceLock},
};

use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xdr_mesh::{fuzz_corpus::assert_short_error, log_limit::LogLimiter};
use xdr_proto::pb;

use crate::{
    cybertrace::{
        EventSink, OutputFormats,
        listener::ConnectionTable,
        session::{self, Context, SessionLimits},
    },
    grpc::{
        convert::{kind_from_pb, runtime_indicator, runtime_supplier, supplier_from_pb},
        wire_results,
    },
    index::parse_indicator,
    store::{IndicatorStore, now_ms},
};

/// The demo feed, loaded once per process.
fn store() -> &'static Arc<IndicatorStore> {
    static STORE: OnceLock<Arc<IndicatorStore>> = OnceLock::new();
    STORE.get_or_init(|| {
        let feeds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("feeds");
        let scratch = std::env::temp_dir().join(format!("xdr-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).expect("a scratch folder");
        let (store, _) =
            IndicatorStore::open(feeds, Default::default(), &scratch.join("internal-ti.redb"))
                .expect("the demo feed loads");
        Arc::new(store)
    })
}

/// The first byte picks the request; the rest is its encoded message.
pub fn requests(data: &[u8]) {
    let Some((&selector, message)) = data.split_first() else {
        return;
    };
    let store = store();
    match selector % 5 {
        0 => {
            let Ok(request) = pb::LookupBatch::decode(message) else {
                return;
            };
            // As LookupStream answers the batch: every error short, every match a TiMatch.
            for result in wire_results(store, &store.view(), &request.objects) {
                if !result.error.is_empty() {
                    assert_short_error("lookup", &result.error);
                }
                for found in result.matches {
                    pb::TiMatch::decode(found).expect("an encoded match decodes");
                }
            }
        }
        1 => {
            let Ok(request) = pb::AddIndicatorsRequest::decode(message) else {
                return;
            };
            for (i, indicator) in request.indicators.into_iter().enumerate() {
                if let Err(status) = runtime_indicator(i, indicator, now_ms()) {
                    assert_short_error("add", status.message());
                }
            }
        }
        2 => {
            let Ok(request) = pb::RemoveIndicatorsRequest::decode(message) else {
                return;
            };
            if let Err(status) = runtime_supplier("supplier", &request.supplier) {
                assert_short_error("remove", status.message());
            }
            for object in &request.objects {
                if let Err(error) = parse_indicator(&object.value, kind_from_pb(object.r#type())) {
                    assert_short_error("remove", &error.to_string());
                }
            }
        }
        3 => {
            let Ok(request) = pb::SearchIndicatorRequest::decode(message) else {
                return;
            };
            if let Some(object) = request.object
                && let Err(error) = store
                    .view()
                    .search(&object.value, kind_from_pb(object.r#type()))
            {
                assert_short_error("search", &error.to_string());
            }
        }
        _ => {
            let Ok(request) = pb::UpsertSupplierRequest::decode(message) else {
                return;
            };
            if let Err(status) = supplier_from_pb(request.supplier) {
                assert_short_error("supplier", status.message());
            }
        }
    }
}

/// The longest opening: nothing the data starts with can extend it.
const OPENING: &[u8] = b"X-KF-SendFinishedEventX-KF-ReplyBackX-KF-SaveStatistic";

/// `data` sent after [`OPENING`] on one connection, which is then closed; the answers must
/// hold one `LookupFinished` per line.
pub fn cybertrace_session(data: &[u8]) {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    static CONTEXT: OnceLock<Context> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    });
    let context = CONTEXT.get_or_init(|| Context {
        store: store().clone(),
        events: EventSink::log_only(Arc::new(default_formats())),
        limits: SessionLimits::default(),
        warnings: LogLimiter::default(),
    });
    let lines = data.split(|&b| b == b'\n').count()
        - usize::from(data.last() == Some(&b'\n'))
        - usize::from(data.is_empty());
    let answers = runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let slot = ConnectionTable::admit(&Arc::new(ConnectionTable::new(1)));
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let served = session::run(server, peer, context, &slot);
        let talk = async {
            client.write_all(OPENING).await.expect("the session reads");
            client.write_all(data).await.expect("the session reads");
            client.shutdown().await.expect("closing the client side");
            let mut answers = Vec::new();
            client.read_to_end(&mut answers).await.expect("the answers");
            answers
        };
        let (ended, answers) = tokio::join!(served, talk);
        ended.expect("the session ends cleanly");
        answers
    });
    let finished = answers
        .split(|&b| b == b'\n')
        .filter(|line| line.starts_with(b"LookupFinished"))
        .count();
    assert_eq!(finished, lines, "one LookupFinished per line");
}

fn default_formats() -> OutputFormats {
    use clap::Parser;
    #[derive(Parser)]
    struct Defaults {
        #[command(flatten)]
        formats: OutputFormats,
    }
    Defaults::parse_from(["fuzz"]).formats
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_requests_corpus_replays() {
        xdr_mesh::fuzz_corpus::replay(
            env!("CARGO_MANIFEST_DIR"),
            "threatintel_requests",
            super::requests,
        );
    }

    #[test]
    fn the_cybertrace_session_corpus_replays() {
        xdr_mesh::fuzz_corpus::replay(
            env!("CARGO_MANIFEST_DIR"),
            "cybertrace_session",
            super::cybertrace_session,
        );
    }
}
