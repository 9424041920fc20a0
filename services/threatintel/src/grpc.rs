//! The `xdr.v1.ThreatIntel` gRPC adapter: requests in, domain calls, replies out.
//! AddIndicators, RemoveIndicators, SearchIndicator and UpsertSupplier (Internal TI with its
//! store) are not built yet and answer UNIMPLEMENTED from the generated defaults.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use xdr_proto::pb::{
    self, CountByKey, FeedReport as PbFeedReport, ListSuppliersReply, ListSuppliersRequest,
    LookupBatch, LookupBatchReply, LookupObject, LookupReply, LookupRequest, LookupResult,
    ReloadFeedsReply, ReloadFeedsRequest, StatsReply, StatsRequest, TiMatch,
    threat_intel_server::ThreatIntel,
};

use crate::{
    index::{IndicatorError, IndicatorIndex, IndicatorKind, Match},
    store::{IndicatorStore, now_ms},
};

/// Objects in one request or batch; more is a client bug, not a workload.
const MAX_OBJECTS: usize = 100_000;
/// Batches of one stream looked up at once: answered as each is ready, bounded for backpressure.
const BATCHES_IN_FLIGHT: usize = 8;

type BoxStream<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

pub struct ThreatIntelService {
    store: Arc<IndicatorStore>,
}

impl ThreatIntelService {
    pub fn new(store: Arc<IndicatorStore>) -> Self {
        ThreatIntelService { store }
    }
}

fn kind_of(object: &LookupObject) -> Option<IndicatorKind> {
    match object.r#type() {
        pb::IndicatorType::Unspecified => None,
        pb::IndicatorType::Ip => Some(IndicatorKind::Ip),
        pb::IndicatorType::Url => Some(IndicatorKind::Url),
        pb::IndicatorType::Domain => Some(IndicatorKind::Domain),
        pb::IndicatorType::Hash => Some(IndicatorKind::Hash),
    }
}

fn pb_kind(kind: IndicatorKind) -> pb::IndicatorType {
    match kind {
        IndicatorKind::Ip => pb::IndicatorType::Ip,
        IndicatorKind::Url => pb::IndicatorType::Url,
        IndicatorKind::Domain => pb::IndicatorType::Domain,
        IndicatorKind::Hash => pb::IndicatorType::Hash,
    }
}

fn to_pb(value: &str, found: &Match<'_>) -> TiMatch {
    TiMatch {
        field: String::new(),
        value: value.to_owned(),
        indicator_type: pb_kind(found.kind) as i32,
        category: found.category.to_owned(),
        matched_indicator: found.matched.to_owned(),
        supplier: found.supplier.to_owned(),
        context: found
            .context
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// Looks up every object against one index; `Err` per object that could not be read.
fn lookup_all(
    store: &IndicatorStore,
    index: &IndicatorIndex,
    objects: &[LookupObject],
) -> Vec<Result<LookupResult, IndicatorError>> {
    let now = now_ms();
    let mut found = Vec::new();
    let mut matched = 0;
    let results = objects
        .iter()
        .map(|object| {
            found.clear();
            index.lookup(&object.value, kind_of(object), now, &mut found)?;
            matched += found.len() as u64;
            Ok(LookupResult {
                matches: found.iter().map(|m| to_pb(&object.value, m)).collect(),
                error: String::new(),
            })
        })
        .collect();
    store.count(objects.len() as u64, matched);
    results
}

fn check_size(objects: &[LookupObject]) -> Result<(), Status> {
    if objects.len() > MAX_OBJECTS {
        return Err(Status::invalid_argument(format!(
            "objects: {} objects; at most {MAX_OBJECTS} per request",
            objects.len()
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl ThreatIntel for ThreatIntelService {
    async fn lookup(
        &self,
        request: Request<LookupRequest>,
    ) -> Result<Response<LookupReply>, Status> {
        let objects = request.into_inner().objects;
        check_size(&objects)?;
        let index = self.store.index();
        let results = lookup_all(&self.store, &index, &objects)
            .into_iter()
            .enumerate()
            .map(|(i, result)| {
                result.map_err(|e| Status::invalid_argument(format!("objects[{i}]: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Response::new(LookupReply { results }))
    }

    async fn lookup_stream(
        &self,
        request: Request<Streaming<LookupBatch>>,
    ) -> Result<Response<BoxStream<LookupBatchReply>>, Status> {
        let mut batches = request.into_inner();
        let (replies, reply_stream) = mpsc::channel(BATCHES_IN_FLIGHT);
        let store = self.store.clone();
        tokio::spawn(async move {
            let in_flight = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
            loop {
                let batch = match batches.message().await {
                    Ok(Some(batch)) => batch,
                    Ok(None) => break,
                    Err(status) => {
                        let _ = replies.send(Err(status)).await;
                        break;
                    }
                };
                if let Err(status) = check_size(&batch.objects) {
                    let _ = replies.send(Err(status)).await;
                    break;
                }
                let permit = in_flight
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let (store, replies) = (store.clone(), replies.clone());
                // Each batch on its own task: a large batch does not hold back the small ones.
                tokio::spawn(async move {
                    let index = store.index();
                    let results = lookup_all(&store, &index, &batch.objects)
                        .into_iter()
                        .map(|result| {
                            result.unwrap_or_else(|e| LookupResult {
                                matches: Vec::new(),
                                error: e.to_string(),
                            })
                        })
                        .collect();
                    let _ = replies
                        .send(Ok(LookupBatchReply {
                            batch_id: batch.batch_id,
                            results,
                        }))
                        .await;
                    drop(permit);
                });
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(reply_stream))))
    }

    async fn list_suppliers(
        &self,
        _: Request<ListSuppliersRequest>,
    ) -> Result<Response<ListSuppliersReply>, Status> {
        let suppliers = self
            .store
            .index()
            .suppliers()
            .iter()
            .map(|s| pb::Supplier {
                name: s.name.clone(),
                confidence: s.confidence.into(),
                retention_minutes: s.retention_minutes,
                description: s.description.clone(),
            })
            .collect();
        Ok(Response::new(ListSuppliersReply { suppliers }))
    }

    async fn reload_feeds(
        &self,
        _: Request<ReloadFeedsRequest>,
    ) -> Result<Response<ReloadFeedsReply>, Status> {
        let store = self.store.clone();
        let reload = tokio::task::spawn_blocking(move || store.reload())
            .await
            .map_err(|e| Status::internal(format!("reload task failed: {e}")))?;
        crate::log_feed_reports(&reload);
        let feeds = reload
            .feeds
            .into_iter()
            .map(|f| PbFeedReport {
                file: f.file,
                supplier: f.supplier,
                indicators: f.indicators,
                error: f.error.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(ReloadFeedsReply {
            feeds,
            load_ms: reload.took.as_millis() as u64,
        }))
    }

    async fn stats(&self, _: Request<StatsRequest>) -> Result<Response<StatsReply>, Status> {
        let stats = self.store.index().stats();
        let counts = |map: std::collections::BTreeMap<String, u64>| {
            map.into_iter()
                .map(|(key, count)| CountByKey { key, count })
                .collect()
        };
        let (lookups, matches) = self.store.counters();
        Ok(Response::new(StatsReply {
            indicators_by_type: counts(
                stats
                    .by_kind
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            ),
            indicators_by_supplier: counts(stats.by_supplier),
            lookups,
            matches,
            resident_bytes: resident_bytes(),
        }))
    }
}

/// Resident memory from /proc/self/statm (Linux), 0 where unavailable.
fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| {
            statm
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page_size).unwrap_or(4096)
}
