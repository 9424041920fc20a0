//! The `xdr.v1.Collector` gRPC adapter: ingest (unary and streamed) through the pipeline in
//! `xdr_collector::ingest`, collector resources through their catalog, and `SearchEvents`
//! running KUMA's SQL, checked, within the caller's tenant. Store work runs off the async
//! runtime.

use std::{pin::Pin, sync::Arc};

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use xdr_collector::{
    collectors::CollectorError,
    ingest::{Ingest, MAX_ID_BYTES},
    search::check::check,
    store::{Cell, EventStore, Found},
};
use xdr_mesh::{
    call_limit::Slots,
    caller::{Action, Caller, MAIN_TENANT},
    error::ServiceError,
    page::page_of,
    replicas::Balanced,
    stream::{idle_limited, until_failed},
};
use xdr_proto::pb::{
    self, CollectorConfig, CollectorStatsReply, CollectorStatsRequest, DeleteCollectorReply,
    DeleteCollectorRequest, GetCollectorRequest, IngestReply, IngestRequest, ListCollectorsReply,
    ListCollectorsRequest, Row, SearchEventsReply, SearchEventsRequest,
    collector_server::Collector,
};

use crate::linked_rules;

/// Searches in progress at once: each may take a core for its time limit.
const MAX_SEARCHES: usize = 4;
/// `IngestStream`s open at once, and batches of one stream in the pipeline at once.
const MAX_INGEST_STREAMS: usize = 64;
const STREAM_BATCHES_IN_FLIGHT: usize = 4;

pub struct CollectorService {
    store: Arc<dyn EventStore>,
    ingest: Arc<Ingest>,
    enrichment: Balanced,
    searches: Slots,
    streams: Slots,
    /// An `IngestStream` that sends nothing for this long is ended (`--stream-idle`): it
    /// holds one of the slots.
    stream_idle: std::time::Duration,
}

impl CollectorService {
    pub fn new(
        store: Arc<dyn EventStore>,
        ingest: Arc<Ingest>,
        enrichment: Balanced,
        stream_idle: std::time::Duration,
    ) -> Self {
        CollectorService {
            stream_idle,
            store,
            ingest,
            enrichment,
            searches: Slots::new("searches in progress", MAX_SEARCHES),
            streams: Slots::new("IngestStream streams", MAX_INGEST_STREAMS),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn EventStore) -> Result<T, xdr_collector::store::EventStoreError>
        + Send
        + 'static,
    ) -> Result<T, Status> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || work(&*store))
            .await
            .map_err(|e| Status::internal(format!("event store task failed: {e}")))?
            .map_err(|e| e.to_status())
    }

    /// Runs a change of the collector catalog off the runtime (it writes the store).
    async fn change<T: Send + 'static>(
        &self,
        change: impl FnOnce(&xdr_collector::collectors::CollectorCatalog) -> Result<T, CollectorError>
        + Send
        + 'static,
    ) -> Result<T, Status> {
        let collectors = self.ingest.collectors.clone();
        tokio::task::spawn_blocking(move || change(&collectors))
            .await
            .map_err(|e| Status::internal(format!("collector store task failed: {e}")))?
            .map_err(|e| e.to_status())
    }

    /// `config` as `request`'s caller may save it: in their tenant, its rules checked.
    async fn saving(&self, request: Request<CollectorConfig>) -> Result<CollectorConfig, Status> {
        let tenant = tenant_for(
            Caller::of(&request)?,
            &request.get_ref().tenant,
            Action::Configure,
        )?;
        let config = CollectorConfig {
            tenant,
            ..request.into_inner()
        };
        // Checked here first, so a bad name is said before the rules are asked about.
        let config = xdr_collector::collectors::validated(config).map_err(|e| e.to_status())?;
        linked_rules::check(&self.enrichment, &config).await?;
        Ok(config)
    }
}

/// The tenant `caller` acts in when it names `tenant`: a person's own unless a Main
/// administrator names another; a service or the operator naming none acts in Main.
fn tenant_for(caller: &Caller, tenant: &str, action: Action) -> Result<String, Status> {
    let tenant = caller.tenant_of(tenant)?;
    let tenant = if tenant.is_empty() {
        MAIN_TENANT.to_owned()
    } else {
        tenant
    };
    caller.may(action, &tenant)?;
    Ok(tenant)
}

/// The tenant whose collectors `caller` sees: a person's own (a Main administrator's: the
/// one named, or all), everyone's for services and the operator.
fn visible_tenant(caller: &Caller, tenant: &str) -> Result<String, Status> {
    let tenant = caller.tenant_of(tenant)?;
    if !tenant.is_empty() {
        caller.may(Action::Read, &tenant)?;
    }
    Ok(tenant)
}

type IngestStream = Pin<Box<dyn Stream<Item = Result<IngestReply, Status>> + Send>>;
type SearchStream = Pin<Box<dyn Stream<Item = Result<SearchEventsReply, Status>> + Send>>;

/// A streamed search's pieces are about this large: well under a client's 4 MiB message.
const SEARCH_PIECE_BYTES: usize = 1 << 20;
/// How long a search waits for the store to hold what was acknowledged before it.
const CAUGHT_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// A client that takes no piece for this long is taken to have gone.
const PIECE_SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[tonic::async_trait]
impl Collector for CollectorService {
    async fn ingest(
        &self,
        request: Request<IngestRequest>,
    ) -> Result<Response<IngestReply>, Status> {
        let collector = self
            .ingest
            .collector_for(Caller::of(&request)?, &request.get_ref().collector)?;
        let reply = self.ingest.batch(collector, request.into_inner()).await?;
        Ok(Response::new(reply))
    }

    async fn ingest_stream(
        &self,
        request: Request<Streaming<IngestRequest>>,
    ) -> Result<Response<IngestStream>, Status> {
        let slot = self.streams.take()?;
        let caller = Caller::of(&request)?.clone();
        let ingest = self.ingest.clone();
        // Each request names its collector, looked up afresh: a change of the collector
        // applies from the next batch. Answers go in order; the first failure ends the
        // stream after the batches before it are answered.
        let answers = idle_limited(request.into_inner(), self.stream_idle)
            .map(move |request| {
                let ingest = ingest.clone();
                let caller = caller.clone();
                async move {
                    let request = request?;
                    let collector = ingest.collector_for(&caller, &request.collector)?;
                    ingest.batch(collector, request).await
                }
            })
            .buffered(STREAM_BATCHES_IN_FLIGHT);
        Ok(Response::new(Box::pin(until_failed(answers, slot))))
    }

    async fn create_collector(
        &self,
        request: Request<CollectorConfig>,
    ) -> Result<Response<CollectorConfig>, Status> {
        let config = self.saving(request).await?;
        Ok(Response::new(
            self.change(move |c| c.save(config, true)).await?,
        ))
    }

    async fn update_collector(
        &self,
        request: Request<CollectorConfig>,
    ) -> Result<Response<CollectorConfig>, Status> {
        if request.get_ref().id.is_empty() {
            return Err(Status::invalid_argument("id: empty"));
        }
        let config = self.saving(request).await?;
        Ok(Response::new(
            self.change(move |c| c.save(config, false)).await?,
        ))
    }

    async fn delete_collector(
        &self,
        request: Request<DeleteCollectorRequest>,
    ) -> Result<Response<DeleteCollectorReply>, Status> {
        let tenant = tenant_for(
            Caller::of(&request)?,
            &request.get_ref().tenant,
            Action::Configure,
        )?;
        let id = request.into_inner().id;
        let forgotten = id.clone();
        let deleted = self.change(move |c| c.delete(&id, &tenant)).await?;
        if deleted {
            self.ingest.forget(&forgotten);
        }
        Ok(Response::new(DeleteCollectorReply { deleted }))
    }

    async fn get_collector(
        &self,
        request: Request<GetCollectorRequest>,
    ) -> Result<Response<CollectorConfig>, Status> {
        let tenant = visible_tenant(Caller::of(&request)?, &request.get_ref().tenant)?;
        let found = self
            .ingest
            .collectors
            .find(&request.get_ref().id, &tenant)
            .map_err(|e| e.to_status())?;
        Ok(Response::new(CollectorConfig::clone(&found)))
    }

    async fn list_collectors(
        &self,
        request: Request<ListCollectorsRequest>,
    ) -> Result<Response<ListCollectorsReply>, Status> {
        let tenant = visible_tenant(Caller::of(&request)?, &request.get_ref().tenant)?;
        let all = self.ingest.collectors.list(&tenant);
        let (collectors, page) = page_of(&all, request.get_ref().page.as_ref())?;
        Ok(Response::new(ListCollectorsReply {
            collectors,
            page: Some(page),
        }))
    }

    async fn stats(
        &self,
        request: Request<CollectorStatsRequest>,
    ) -> Result<Response<CollectorStatsReply>, Status> {
        let tenant = visible_tenant(Caller::of(&request)?, "")?;
        let tenant = (!tenant.is_empty()).then_some(tenant.as_str());
        Ok(Response::new(CollectorStatsReply {
            collectors: self.ingest.stats.of(tenant),
        }))
    }

    async fn search_events(
        &self,
        request: Request<SearchEventsRequest>,
    ) -> Result<Response<SearchEventsReply>, Status> {
        let _slot = self.searches.take()?;
        let search = self.checked(&request).await?;
        let found = self.blocking(move |store| store.search(&search)).await?;
        Ok(Response::new(reply_of(found)))
    }

    async fn get_event(
        &self,
        request: Request<xdr_proto::pb::GetEventRequest>,
    ) -> Result<Response<xdr_proto::pb::Event>, Status> {
        // A search like any other: it takes one of the few search slots.
        let _slot = self.searches.take()?;
        let tenant = tenant_for(
            Caller::of(&request)?,
            &request.get_ref().tenant,
            Action::Read,
        )?;
        let id = request.into_inner().id;
        if id.is_empty() || id.len() > MAX_ID_BYTES {
            return Err(Status::invalid_argument(format!(
                "id: 1 to {MAX_ID_BYTES} bytes"
            )));
        }
        self.ingest.caught_up(CAUGHT_UP_WAIT).await;
        let search = xdr_collector::search::query::Search::event_by_id(&id).within_tenant(&tenant);
        let found = self.blocking(move |store| store.search(&search)).await?;
        match found {
            Found::Events(mut events) if !events.is_empty() => Ok(Response::new(events.remove(0))),
            _ => Err(Status::not_found(format!(
                "no event {} in tenant {}",
                xdr_mesh::quote::quoted(&id),
                xdr_mesh::quote::quoted(&tenant)
            ))),
        }
    }

    async fn search_events_stream(
        &self,
        request: Request<SearchEventsRequest>,
    ) -> Result<Response<SearchStream>, Status> {
        let slot = self.searches.take()?;
        let search = self.checked(&request).await?;
        let (pieces, answer) = tokio::sync::mpsc::channel(2);
        let store = self.store.clone();
        let runtime = tokio::runtime::Handle::current();
        // The search runs on a blocking thread and hands each piece to the stream as the
        // client takes them; a client that stops reading stops the search.
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            // Each piece, and the failure that ends the stream, waits at most
            // PIECE_SEND_TIMEOUT for a client that stopped reading.
            let send = |answer| {
                let sent = runtime.block_on(tokio::time::timeout(
                    PIECE_SEND_TIMEOUT,
                    pieces.send(answer),
                ));
                matches!(sent, Ok(Ok(())))
            };
            let outcome = store.search_pieces(&search, SEARCH_PIECE_BYTES, &mut |piece, _| {
                if send(Ok(reply_of(piece))) {
                    Ok(())
                } else {
                    Err(xdr_collector::store::EventStoreError::Store(
                        xdr_mesh::store::StoreFailure::with_code(
                            xdr_mesh::error::ErrorCode::DeadlineExceeded,
                            "the client stopped reading the answer",
                        ),
                    ))
                }
            });
            if let Err(failed) = outcome {
                send(Err(failed.to_status()));
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(answer),
        )))
    }
}

impl CollectorService {
    /// `request`'s SQL checked, restricted to the tenant its caller may read, once the store
    /// holds what was acknowledged before it came (or a few seconds have passed).
    async fn checked(
        &self,
        request: &Request<SearchEventsRequest>,
    ) -> Result<xdr_collector::search::query::Search, Status> {
        let tenant = tenant_for(
            Caller::of(request)?,
            &request.get_ref().tenant,
            Action::Read,
        )?;
        let search = check(&request.get_ref().sql)
            .map_err(|invalid| invalid.to_status())?
            .within_tenant(&tenant);
        if !self.ingest.caught_up(CAUGHT_UP_WAIT).await {
            tracing::warn!("searching before the store holds every acknowledged batch");
        }
        Ok(search)
    }
}

fn reply_of(found: Found) -> SearchEventsReply {
    match found {
        Found::Events(events) => SearchEventsReply {
            events,
            ..Default::default()
        },
        Found::Rows { columns, rows } => SearchEventsReply {
            columns,
            rows: rows
                .into_iter()
                .map(|cells| Row {
                    cells: cells.into_iter().map(cell).collect(),
                })
                .collect(),
            ..Default::default()
        },
    }
}

fn cell(value: Cell) -> pb::Cell {
    use pb::cell::Kind;
    pb::Cell {
        kind: match value {
            Cell::Null => None,
            Cell::Integer(n) => Some(Kind::Integer(n)),
            Cell::Number(n) => Some(Kind::Number(n)),
            Cell::Text(text) => Some(Kind::Text(text)),
        },
    }
}
