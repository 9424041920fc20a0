//! The `xdr.v1.Enrichment` gRPC adapter: catalog changes run off the async runtime (they
//! write the store), reads answer from the catalog's last snapshot without waiting for a
//! change, and `Enrich` answers batches in the order they came, several at work at once.

use std::{pin::Pin, sync::Arc, time::Instant};

use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinHandle,
};
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};
use xdr_proto::{
    enrichment_wire::enrichment_server::Enrichment,
    pb::{
        ChangeResourceEntriesReply, ChangeResourceEntriesRequest, DeleteReply, DeleteRequest,
        EnrichmentRule, EnrichmentStatsReply, EnrichmentStatsRequest, Filter, GetRequest,
        ListFiltersReply, ListRequest, ListResourcesReply, ListRulesReply, LookupObject, PageInfo,
        Resource, TestConnectionReply,
    },
    wire::WireEnrichBatch,
};

use xdr_mesh::{
    call_limit::Slots,
    caller::{Action, Caller},
    error::ServiceError,
};

use crate::{
    catalog::{Catalog, CatalogError, SharedCatalog},
    enrich::{Enricher, InvalidEvent},
    rule,
    stats::StatusCounts,
};

/// Events in one batch at most: more is a client bug, not a workload.
const MAX_BATCH_EVENTS: usize = 100_000;
/// Batches of one stream being enriched at once; later ones wait (backpressure).
const BATCHES_IN_FLIGHT: usize = 8;

/// `Enrich` streams open at once: each may hold its batches in flight.
const MAX_ENRICH_STREAMS: usize = 64;

pub struct EnrichmentService {
    catalog: Arc<SharedCatalog>,
    enricher: Arc<Enricher>,
    enrich_streams: Slots,
}

/// A batch being enriched: its id, and the enriched batch with its statuses or why not.
type BatchTask = JoinHandle<(u64, Result<(WireEnrichBatch, StatusCounts), InvalidEvent>)>;

/// What the writer of an `Enrich` stream answers next, in the order the batches came.
enum Next {
    Batch(BatchTask),
    /// The stream failed here: the answer after the batches before it.
    Failed(Status),
}

impl EnrichmentService {
    pub fn new(catalog: Arc<SharedCatalog>, enricher: Arc<Enricher>) -> Self {
        EnrichmentService {
            catalog,
            enricher,
            enrich_streams: Slots::new("Enrich streams", MAX_ENRICH_STREAMS),
        }
    }

    /// Runs `change` (named `rpc` in the log) on the catalog's one writer, off the runtime.
    async fn change<T: Send + 'static>(
        &self,
        rpc: &'static str,
        change: impl FnOnce(&mut Catalog) -> Result<T, CatalogError> + Send + 'static,
    ) -> Result<T, Status> {
        let catalog = self.catalog.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = catalog.lock();
            tracing::debug!(rpc, "catalog change begins");
            change(&mut writer)
        })
        .await
        .map_err(|e| Status::internal(format!("catalog task failed: {e}")))?
        .map_err(status_of)
    }
}

fn status_of(error: CatalogError) -> Status {
    error.to_status()
}

/// One page of `items`, copied out of the snapshot: the page token is the offset of the
/// page's first item.
fn page<T: Clone>(items: Vec<Arc<T>>, request: &ListRequest) -> Result<(Vec<T>, PageInfo), Status> {
    let page = request.page.clone().unwrap_or_default();
    let offset: usize = if page.page_token.is_empty() {
        0
    } else {
        page.page_token.parse().map_err(|_| {
            Status::invalid_argument("page.page_token: not a token this service gave")
        })?
    };
    let size = match page.page_size {
        0 => 100,
        n => n.min(1000) as usize,
    };
    let total = items.len();
    let items: Vec<T> = (items.iter().skip(offset).take(size))
        .map(|item| T::clone(item))
        .collect();
    let next = offset + items.len();
    let next_page_token = if next < total {
        next.to_string()
    } else {
        String::new()
    };
    Ok((items, PageInfo { next_page_token }))
}

type EnrichStream = Pin<Box<dyn Stream<Item = Result<WireEnrichBatch, Status>> + Send>>;

#[tonic::async_trait]
impl Enrichment for EnrichmentService {
    async fn enrich(
        &self,
        request: Request<Streaming<WireEnrichBatch>>,
    ) -> Result<Response<EnrichStream>, Status> {
        let stream_slot = self.enrich_streams.take()?;
        let mut batches = request.into_inner();
        let (results, out) = mpsc::channel::<Result<WireEnrichBatch, Status>>(BATCHES_IN_FLIGHT);
        // Batches are enriched concurrently and answered in arrival order: their tasks are
        // queued in order, and the writer awaits them one by one. A stream that fails (a
        // malformed frame, a refused batch) queues its failure behind the batches before it,
        // so those are answered and the stream then ends with the failure, never with OK.
        let (ordered, mut in_order) = mpsc::channel(BATCHES_IN_FLIGHT);
        let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
        let enricher = self.enricher.clone();
        tokio::spawn(async move {
            loop {
                let batch = match batches.next().await {
                    None => break,
                    Some(Ok(batch)) => batch,
                    Some(Err(status)) => {
                        tracing::debug!(%status, "enrich stream failed");
                        let _ = ordered.send(Next::Failed(status)).await;
                        break;
                    }
                };
                if batch.events.len() > MAX_BATCH_EVENTS {
                    let refused = Status::invalid_argument(format!(
                        "events: {} in batch {}; at most {MAX_BATCH_EVENTS}",
                        batch.events.len(),
                        batch.batch_id
                    ));
                    let _ = ordered.send(Next::Failed(refused)).await;
                    break;
                }
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let enricher = enricher.clone();
                let task = tokio::spawn(async move {
                    let batch_id = batch.batch_id;
                    let enriched = enricher.enrich(batch).await;
                    drop(permit);
                    (batch_id, enriched)
                });
                if ordered.send(Next::Batch(task)).await.is_err() {
                    break;
                }
            }
        });
        let enricher = self.enricher.clone();
        tokio::spawn(async move {
            let _stream_slot = stream_slot;
            while let Some(next) = in_order.recv().await {
                let task = match next {
                    Next::Batch(task) => task,
                    Next::Failed(status) => {
                        let _ = results.send(Err(status)).await;
                        return;
                    }
                };
                // Counted before it is sent: whoever reads the answer sees it counted.
                let failed = match task.await {
                    Ok((_, Ok((batch, counts)))) => {
                        enricher.stats().answered(counts);
                        if results.send(Ok(batch)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Ok((batch_id, Err(invalid))) => {
                        enricher.stats().refused_batch();
                        Status::invalid_argument(format!("batch {batch_id}: {invalid}"))
                    }
                    Err(e) => Status::internal(format!("enriching a batch failed: {e}")),
                };
                // A refused batch ends the stream: the batches after it are not answered.
                let _ = results.send(Err(failed)).await;
                return;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    async fn create_rule(
        &self,
        request: Request<EnrichmentRule>,
    ) -> Result<Response<EnrichmentRule>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let rule = EnrichmentRule {
            tenant,
            ..request.into_inner()
        };
        Ok(Response::new(
            self.change("CreateRule", move |c| c.save_rule(rule, true))
                .await?,
        ))
    }

    async fn update_rule(
        &self,
        request: Request<EnrichmentRule>,
    ) -> Result<Response<EnrichmentRule>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let rule = EnrichmentRule {
            tenant,
            ..request.into_inner()
        };
        if rule.id.is_empty() {
            return Err(Status::invalid_argument("id: empty"));
        }
        Ok(Response::new(
            self.change("UpdateRule", move |c| c.save_rule(rule, false))
                .await?,
        ))
    }

    async fn delete_rule(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteReply>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let id = request.into_inner().id;
        let deleted = self
            .change("DeleteRule", move |c| c.delete_rule(&id, &tenant))
            .await?;
        Ok(Response::new(DeleteReply { deleted }))
    }

    async fn get_rule(
        &self,
        request: Request<GetRequest>,
    ) -> Result<Response<EnrichmentRule>, Status> {
        let tenant = authorized(&request, Action::Read, &request.get_ref().tenant)?;
        let id = request.into_inner().id;
        Ok(Response::new(
            self.catalog
                .records()
                .rule(&id, &tenant)
                .map_err(status_of)?,
        ))
    }

    async fn list_rules(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListRulesReply>, Status> {
        let tenant = authorized(&request, Action::Read, &request.get_ref().tenant)?;
        let request = request.into_inner();
        let rules = self.catalog.records().rules(&tenant);
        let (rules, page) = page(rules, &request)?;
        Ok(Response::new(ListRulesReply {
            rules,
            page: Some(page),
        }))
    }

    async fn test_connection(
        &self,
        request: Request<EnrichmentRule>,
    ) -> Result<Response<TestConnectionReply>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let mut rule = EnrichmentRule {
            tenant,
            ..request.into_inner()
        };
        // Only the source settings matter here; a rule being drafted may lack the rest.
        if rule.name.is_empty() {
            rule.name = "connection test".to_owned();
        }
        if rule.mapping.is_empty() {
            rule.mapping.push(xdr_proto::pb::FieldMapping {
                field: "RequestUrl".to_owned(),
                indicator_type: xdr_proto::pb::IndicatorType::Url as i32,
            });
        }
        let rule = rule::checked(rule, 1).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let started = Instant::now();
        let probe = vec![LookupObject {
            r#type: xdr_proto::pb::IndicatorType::Ip as i32,
            value: "192.0.2.0".to_owned(),
        }];
        let reply = match self.enricher.test(&rule, probe).await {
            Ok(()) => TestConnectionReply {
                ok: true,
                message: "the source answered a lookup".to_owned(),
                latency_ms: started.elapsed().as_millis() as u32,
            },
            Err(why) => TestConnectionReply {
                ok: false,
                message: why,
                latency_ms: started.elapsed().as_millis() as u32,
            },
        };
        Ok(Response::new(reply))
    }

    async fn create_filter(&self, request: Request<Filter>) -> Result<Response<Filter>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let filter = Filter {
            tenant,
            ..request.into_inner()
        };
        Ok(Response::new(
            self.change("CreateFilter", move |c| c.save_filter(filter, true))
                .await?,
        ))
    }

    async fn update_filter(&self, request: Request<Filter>) -> Result<Response<Filter>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let filter = Filter {
            tenant,
            ..request.into_inner()
        };
        if filter.id.is_empty() {
            return Err(Status::invalid_argument("id: empty"));
        }
        Ok(Response::new(
            self.change("UpdateFilter", move |c| c.save_filter(filter, false))
                .await?,
        ))
    }

    async fn delete_filter(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteReply>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let id = request.into_inner().id;
        let deleted = self
            .change("DeleteFilter", move |c| c.delete_filter(&id, &tenant))
            .await?;
        Ok(Response::new(DeleteReply { deleted }))
    }

    async fn get_filter(&self, request: Request<GetRequest>) -> Result<Response<Filter>, Status> {
        let tenant = authorized(&request, Action::Read, &request.get_ref().tenant)?;
        let id = request.into_inner().id;
        Ok(Response::new(
            self.catalog
                .records()
                .filter(&id, &tenant)
                .map_err(status_of)?,
        ))
    }

    async fn create_resource(
        &self,
        request: Request<Resource>,
    ) -> Result<Response<Resource>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let resource = Resource {
            tenant,
            ..request.into_inner()
        };
        Ok(Response::new(
            self.change("CreateResource", move |c| c.save_resource(resource, true))
                .await?,
        ))
    }

    async fn update_resource(
        &self,
        request: Request<Resource>,
    ) -> Result<Response<Resource>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let resource = Resource {
            tenant,
            ..request.into_inner()
        };
        if resource.id.is_empty() {
            return Err(Status::invalid_argument("id: empty"));
        }
        Ok(Response::new(
            self.change("UpdateResource", move |c| c.save_resource(resource, false))
                .await?,
        ))
    }

    async fn delete_resource(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteReply>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let id = request.into_inner().id;
        let deleted = self
            .change("DeleteResource", move |c| c.delete_resource(&id, &tenant))
            .await?;
        Ok(Response::new(DeleteReply { deleted }))
    }

    async fn get_resource(
        &self,
        request: Request<GetRequest>,
    ) -> Result<Response<Resource>, Status> {
        let tenant = authorized(&request, Action::Read, &request.get_ref().tenant)?;
        let id = request.into_inner().id;
        Ok(Response::new(
            self.catalog
                .records()
                .resource(&id, &tenant)
                .map_err(status_of)?,
        ))
    }

    async fn list_resources(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListResourcesReply>, Status> {
        let tenant = authorized(&request, Action::Read, &request.get_ref().tenant)?;
        let request = request.into_inner();
        let resources = self.catalog.records().resources(&tenant);
        let (resources, page) = page(resources, &request)?;
        Ok(Response::new(ListResourcesReply {
            resources,
            page: Some(page),
        }))
    }

    async fn list_filters(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListFiltersReply>, Status> {
        let tenant = authorized(&request, Action::Read, &request.get_ref().tenant)?;
        let request = request.into_inner();
        let filters = self.catalog.records().filters(&tenant);
        let (filters, page) = page(filters, &request)?;
        Ok(Response::new(ListFiltersReply {
            filters,
            page: Some(page),
        }))
    }

    async fn change_resource_entries(
        &self,
        request: Request<ChangeResourceEntriesRequest>,
    ) -> Result<Response<ChangeResourceEntriesReply>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let request = request.into_inner();
        if request.id.is_empty() {
            return Err(Status::invalid_argument("id: empty"));
        }
        let (resource, changed) = self
            .change("ChangeResourceEntries", move |c| {
                c.change_entries(&request.id, &tenant, request.put, &request.remove)
            })
            .await?;
        Ok(Response::new(ChangeResourceEntriesReply {
            entries: resource.entries.len() as u64,
            added: changed.added,
            removed: changed.removed,
        }))
    }

    async fn stats(
        &self,
        request: Request<EnrichmentStatsRequest>,
    ) -> Result<Response<EnrichmentStatsReply>, Status> {
        // The figures cover every tenant's rules: a person must be a Main administrator.
        let caller = Caller::of(&request)?;
        if caller.person.is_some() && !caller.is_main_administrator() {
            return Err(Status::permission_denied(
                "Stats covers every tenant: for Main administrators",
            ));
        }
        Ok(Response::new(self.enricher.stats().snapshot()))
    }
}

/// The tenant a request's caller acts in when its body names `tenant`, after checking the
/// caller may do `action` there (`xdr_mesh::caller`: a person's body may not name another
/// tenant unless they are a Main administrator).
fn authorized<T>(request: &Request<T>, action: Action, tenant: &str) -> Result<String, Status> {
    let caller = Caller::of(request)?;
    let tenant = caller.tenant_of(tenant)?;
    caller.may(action, &tenant)?;
    Ok(tenant)
}
