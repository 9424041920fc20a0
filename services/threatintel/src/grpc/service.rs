//! The ThreatIntel RPCs.

use std::sync::Arc;

use bytes::BytesMut;

use futures_util::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use xdr_mesh::{
    call_limit::Slots,
    caller::{Action, Caller, SHARED_TENANT},
    error::ServiceError,
    stream::{answer_unordered, idle_limited},
};
use xdr_proto::{
    pb::{
        self, AddIndicatorsReply, AddIndicatorsRequest, CountByKey, ListSuppliersReply,
        ListSuppliersRequest, LookupBatch, LookupObject, LookupReply, LookupRequest, LookupResult,
        ReloadFeedsReply, ReloadFeedsRequest, RemoveIndicatorsReply, RemoveIndicatorsRequest,
        SearchIndicatorReply, SearchIndicatorRequest, StatsReply, StatsRequest,
        UpsertSupplierRequest,
    },
    wire::{WireLookupReply, WireLookupResult, encode_ti_match},
    wire_servers::threat_intel_server::ThreatIntel,
};

use super::convert::{
    counts_to_pb, indicator_to_pb, kind_from_pb, match_parts, match_to_pb, runtime_indicator,
    runtime_supplier, supplier_from_pb, supplier_to_pb,
};
use crate::{
    cybertrace::EventSink,
    index::{IndexView, IndicatorError, Match, parse_indicator},
    internal_ti::StoreError,
    metrics::{self, Interface},
    remote::{Pollers, SourceChangeError},
    store::{IndicatorStore, Reload, now_ms},
};

/// Objects in one request or batch; more is a client bug, not a workload.
const MAX_OBJECTS: usize = 100_000;
/// Batches of one stream looked up at once: answered as each is ready, bounded for backpressure.
const BATCHES_IN_FLIGHT: usize = 8;

type BoxStream<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

/// `LookupStream`s open at once: each may hold its batches in flight.
const MAX_LOOKUP_STREAMS: usize = 64;

pub struct ThreatIntelService {
    store: Arc<IndicatorStore>,
    /// The remote suppliers' pollers.
    pollers: Arc<Pollers>,
    /// Where a reload's service alerts go.
    events: EventSink,
    lookup_streams: Slots,
    /// A `LookupStream` that sends nothing for this long is ended (`--stream-idle`): silent
    /// streams would hold the slots for ever.
    stream_idle: std::time::Duration,
}

impl ThreatIntelService {
    pub fn new(
        store: Arc<IndicatorStore>,
        pollers: Arc<Pollers>,
        events: EventSink,
        stream_idle: std::time::Duration,
    ) -> Self {
        ThreatIntelService {
            store,
            pollers,
            events,
            lookup_streams: Slots::new("LookupStream streams", MAX_LOOKUP_STREAMS),
            stream_idle,
        }
    }

    fn reload_to_pb(&self, reload: Reload) -> ReloadFeedsReply {
        crate::report_reload(&reload, &self.events);
        reload_to_pb(reload)
    }

    /// Runs a blocking store change off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        change: impl FnOnce(&IndicatorStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || change(&store))
            .await
            .map_err(|e| Status::internal(format!("store task failed: {e}")))?
            .map_err(|e| e.to_status())
    }
}

/// Looks up every object in one view, handing `answer` each object's matches (or why it
/// could not be read) in order.
fn look_up_each<'v>(
    store: &IndicatorStore,
    view: &'v IndexView,
    objects: &[LookupObject],
    mut answer: impl FnMut(&LookupObject, Result<&[Match<'v>], IndicatorError>),
) {
    let now = now_ms();
    let mut found = Vec::new();
    let mut matched = 0;
    for object in objects {
        found.clear();
        match view.lookup(
            &object.value,
            kind_from_pb(object.r#type()),
            now,
            &mut found,
        ) {
            Ok(()) => {
                matched += found.len() as u64;
                answer(object, Ok(&found));
            }
            Err(error) => answer(object, Err(error)),
        }
    }
    store.count(objects.len() as u64, matched);
    metrics::looked_up(Interface::Grpc, objects.len() as u64, matched);
}

/// Every object's result, its matches encoded straight from the index into one buffer the
/// results share: no owned message per match, nothing encoded twice.
pub(crate) fn wire_results(
    store: &IndicatorStore,
    view: &IndexView,
    objects: &[LookupObject],
) -> Vec<WireLookupResult> {
    let mut results = Vec::with_capacity(objects.len());
    let mut encoded = BytesMut::new();
    look_up_each(store, view, objects, |object, found| {
        results.push(match found {
            Ok(found) => WireLookupResult {
                matches: (found.iter())
                    .map(|m| {
                        encode_ti_match(match_parts(&object.value, m), &mut encoded);
                        encoded.split().freeze()
                    })
                    .collect(),
                error: String::new(),
            },
            Err(error) => WireLookupResult {
                matches: Vec::new(),
                error: error.to_string(),
            },
        });
    });
    results
}

fn check_size(field: &str, count: usize) -> Result<(), Status> {
    if count > MAX_OBJECTS {
        return Err(Status::invalid_argument(format!(
            "{field}: {count} items; at most {MAX_OBJECTS} per request"
        )));
    }
    Ok(())
}

fn reload_to_pb(reload: Reload) -> ReloadFeedsReply {
    let feeds = reload
        .feeds
        .into_iter()
        .map(|f| pb::FeedReport {
            file: f.file,
            supplier: f.supplier,
            indicators: f.indicators,
            error: f.error.unwrap_or_default(),
            skipped: f.skipped.count,
            skipped_records: f.skipped.first,
            skipped_by_reason: counts_to_pb(&f.skipped.by_reason),
        })
        .collect();
    ReloadFeedsReply {
        feeds,
        load_ms: reload.took.as_millis() as u64,
    }
}

#[tonic::async_trait]
impl ThreatIntel for ThreatIntelService {
    async fn lookup(
        &self,
        request: Request<LookupRequest>,
    ) -> Result<Response<LookupReply>, Status> {
        let objects = request.into_inner().objects;
        check_size("objects", objects.len())?;
        let mut results = Vec::with_capacity(objects.len());
        let mut refused = None;
        look_up_each(
            &self.store,
            &self.store.view(),
            &objects,
            |object, found| {
                match found {
                    Ok(found) => results.push(LookupResult {
                        matches: found
                            .iter()
                            .map(|m| match_to_pb(&object.value, m))
                            .collect(),
                        error: String::new(),
                    }),
                    // The first object refused is named: every one before it has its result.
                    Err(error) if refused.is_none() => {
                        let i = results.len();
                        refused = Some(Status::invalid_argument(format!("objects[{i}]: {error}")));
                    }
                    Err(_) => {}
                }
            },
        );
        match refused {
            Some(status) => Err(status),
            None => Ok(Response::new(LookupReply { results })),
        }
    }

    async fn lookup_stream(
        &self,
        request: Request<Streaming<LookupBatch>>,
    ) -> Result<Response<BoxStream<WireLookupReply>>, Status> {
        let stream_slot = self.lookup_streams.take()?;
        let store = self.store.clone();
        // Batches are looked up concurrently, each on a task of its own, and each answered as
        // soon as it is done (replies carry their batch's id): a large batch does not hold
        // back the small ones. A stream that fails (a malformed frame, an oversized batch)
        // ends with that status after every batch before it has been answered: never with OK.
        let batches = idle_limited(request.into_inner(), self.stream_idle).map(|batch| {
            let batch = batch?;
            check_size("objects", batch.objects.len())?;
            Ok(batch)
        });
        let answers = answer_unordered(
            batches,
            BATCHES_IN_FLIGHT,
            move |batch| look_up_batch(store.clone(), batch),
            stream_slot,
        );
        Ok(Response::new(Box::pin(answers)))
    }

    async fn add_indicators(
        &self,
        request: Request<AddIndicatorsRequest>,
    ) -> Result<Response<AddIndicatorsReply>, Status> {
        Caller::of(&request)?.may_globally(Action::ChangeInternalTi)?;
        let indicators = request.into_inner().indicators;
        check_size("indicators", indicators.len())?;
        let now = now_ms();
        let checked = indicators
            .into_iter()
            .enumerate()
            .map(|(i, indicator)| runtime_indicator(i, indicator, now))
            .collect::<Result<Vec<_>, _>>()?;
        let (added, updated) = self.blocking(move |store| store.add(&checked)).await?;
        tracing::info!(added, updated, "Internal TI updated");
        Ok(Response::new(AddIndicatorsReply { added, updated }))
    }

    async fn remove_indicators(
        &self,
        request: Request<RemoveIndicatorsRequest>,
    ) -> Result<Response<RemoveIndicatorsReply>, Status> {
        Caller::of(&request)?.may_globally(Action::ChangeInternalTi)?;
        let request = request.into_inner();
        check_size("objects", request.objects.len())?;
        let supplier = runtime_supplier("supplier", &request.supplier)?;
        let keys = request
            .objects
            .iter()
            .enumerate()
            .map(|(i, o)| {
                parse_indicator(&o.value, kind_from_pb(o.r#type()))
                    .map_err(|e| Status::invalid_argument(format!("objects[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let removed = self
            .blocking(move |store| store.remove(&supplier, &keys))
            .await?;
        tracing::info!(removed, "Internal TI updated");
        Ok(Response::new(RemoveIndicatorsReply { removed }))
    }

    async fn search_indicator(
        &self,
        request: Request<SearchIndicatorRequest>,
    ) -> Result<Response<SearchIndicatorReply>, Status> {
        let object = request
            .into_inner()
            .object
            .ok_or_else(|| Status::invalid_argument("object: required"))?;
        let found = self
            .store
            .view()
            .search(&object.value, kind_from_pb(object.r#type()))
            .map_err(|e| Status::invalid_argument(format!("object: {e}")))?;
        Ok(Response::new(SearchIndicatorReply {
            indicators: found.into_iter().map(indicator_to_pb).collect(),
        }))
    }

    async fn list_suppliers(
        &self,
        _: Request<ListSuppliersRequest>,
    ) -> Result<Response<ListSuppliersReply>, Status> {
        let suppliers = self
            .store
            .view()
            .feeds
            .suppliers()
            .iter()
            .map(supplier_to_pb)
            .collect();
        let statuses =
            super::convert::supplier_statuses(&self.store.last_reports(), &self.pollers.statuses());
        Ok(Response::new(ListSuppliersReply {
            suppliers,
            statuses,
        }))
    }

    async fn upsert_supplier(
        &self,
        request: Request<UpsertSupplierRequest>,
    ) -> Result<Response<pb::Supplier>, Status> {
        // Suppliers and feeds serve every tenant: changing them is a Main administrator's.
        Caller::of(&request)?.may(Action::Configure, SHARED_TENANT)?;
        let asked = request.into_inner().supplier;
        let source = asked.as_ref().and_then(|s| s.source.clone());
        let supplier = supplier_from_pb(asked)?;
        if let Some(source) = source {
            let change = super::convert::source_from_pb(&supplier.name, source)?;
            let (pollers, name) = (self.pollers.clone(), supplier.name.clone());
            tokio::task::spawn_blocking(move || match change {
                Some(entry) => pollers.set(entry),
                None => pollers.remove(&name).map(|_| ()),
            })
            .await
            .map_err(|e| Status::internal(format!("poller task failed: {e}")))?
            .map_err(|e| match e {
                SourceChangeError::Invalid(why) => {
                    Status::invalid_argument(format!("supplier.source: {why}"))
                }
                SourceChangeError::FromFile(_) => {
                    Status::failed_precondition(format!("supplier.source: {e}"))
                }
                SourceChangeError::TooMany => {
                    Status::resource_exhausted(format!("supplier.source: {e}"))
                }
                SourceChangeError::Store(e) => e.to_status(),
            })?;
        }
        let reply = supplier_to_pb(&supplier);
        let reload = self
            .blocking(move |store| store.upsert_supplier(&supplier))
            .await?;
        self.reload_to_pb(reload);
        Ok(Response::new(reply))
    }

    async fn reload_feeds(
        &self,
        request: Request<ReloadFeedsRequest>,
    ) -> Result<Response<ReloadFeedsReply>, Status> {
        Caller::of(&request)?.may(Action::Configure, SHARED_TENANT)?;
        let reload = self.blocking(IndicatorStore::reload).await?;
        Ok(Response::new(self.reload_to_pb(reload)))
    }

    async fn stats(&self, _: Request<StatsRequest>) -> Result<Response<StatsReply>, Status> {
        let view = self.store.view();
        let (mut stats, runtime) = (view.feeds.stats(), view.runtime.stats());
        for (kind, count) in runtime.by_kind {
            *stats.by_kind.entry(kind).or_default() += count;
        }
        for (supplier, count) in runtime.by_supplier {
            *stats.by_supplier.entry(supplier).or_default() += count;
        }
        let (lookups, matches) = self.store.counters();
        let reports = self.store.last_reports();
        let mut skipped = std::collections::BTreeMap::new();
        for report in &reports {
            for (reason, count) in &report.skipped.by_reason {
                *skipped.entry(*reason).or_default() += count;
            }
        }
        let statuses = super::convert::supplier_statuses(&reports, &self.pollers.statuses());
        let suppliers_failing = statuses.iter().filter(|s| !s.last_error.is_empty()).count();
        Ok(Response::new(StatsReply {
            indicators_by_type: stats
                .by_kind
                .into_iter()
                .map(|(key, count)| CountByKey {
                    key: key.to_owned(),
                    count,
                })
                .collect(),
            indicators_by_supplier: stats
                .by_supplier
                .into_iter()
                .map(|(key, count)| CountByKey { key, count })
                .collect(),
            lookups,
            matches,
            resident_bytes: resident_bytes(),
            skipped_by_reason: counts_to_pb(&skipped),
            suppliers_failing: suppliers_failing as u64,
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

/// One batch of a `LookupStream`, looked up on a task of its own; a value that cannot be
/// read is answered with its error, the others with their matches.
async fn look_up_batch(
    store: Arc<IndicatorStore>,
    batch: LookupBatch,
) -> Result<WireLookupReply, Status> {
    let span = xdr_mesh::trace::batch(
        tracing::info_span!(
            "lookup",
            otel.name = "threatintel.lookup",
            objects = batch.objects.len()
        ),
        &batch.traceparent,
        batch.links.iter().map(String::as_str),
    );
    let looking = tokio::spawn(async move {
        let _traced = span.enter();
        wire_results(&store, &store.view(), &batch.objects)
    });
    let results = looking
        .await
        .map_err(|e| Status::internal(format!("looking a batch up failed: {e}")))?;
    Ok(WireLookupReply {
        batch_id: batch.batch_id,
        results,
    })
}
