//! `xdrctl quickstart`: what the seed's CyberTrace test needs, made once — the enrichment
//! rule "Test CT enrichment" (tenant Shared, the local threat intel, `RequestUrl` → url,
//! debug on) and the collector `http-input` (tenant Main, JSON mapping `RequestUrl`, linked
//! to the rule). Idempotent: what exists by those names is left as the user made it.

use anyhow::Context;
use xdr_mesh::{
    caller::{MAIN_TENANT, SHARED_TENANT},
    directory::{COLLECTOR, ENRICHMENT},
};
use xdr_proto::pb::{
    CollectorConfig, Destination, DestinationKind, EnrichmentRule, FieldMap, FieldMapping,
    IndicatorType, ListCollectorsRequest, Normalizer, PageRequest, SourceKind, Transport,
    collector_client::CollectorClient, enrichment_client::EnrichmentClient,
};

use crate::connect::{Target, failed};

pub const RULE: &str = "Test CT enrichment";
pub const COLLECTOR_NAME: &str = "http-input";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    make(args).await?;
    // The gateway wrote its first Main administrator's token into the home on fresh data.
    let home = crate::layout::Home::new(&args.target.home);
    if let Some((token, file)) = crate::people::first_admin_token(&home) {
        println!(
            "the first Main administrator's token (kept in {}): {token}",
            file.display()
        );
    }
    Ok(())
}

async fn make(args: &Args) -> anyhow::Result<()> {
    let mut rules = EnrichmentClient::new(args.target.channel(&ENRICHMENT).await?);
    let rule = match find_rule(&mut rules).await? {
        Some(rule) => {
            println!("enrichment rule {RULE:?} exists ({})", rule.id);
            rule
        }
        None => {
            let rule = rules
                .create_rule(EnrichmentRule {
                    name: RULE.into(),
                    tenant: SHARED_TENANT.into(),
                    source_kind: SourceKind::Threatintel as i32,
                    mapping: vec![FieldMapping {
                        field: "RequestUrl".into(),
                        indicator_type: IndicatorType::Url as i32,
                    }],
                    debug: true,
                    description: "The seed's CyberTrace test: RequestUrl looked up as a URL in the local threat intel (xdrctl quickstart).".into(),
                    ..Default::default()
                })
                .await
                .map_err(failed)
                .context("creating the enrichment rule")?
                .into_inner();
            println!("created enrichment rule {RULE:?} ({})", rule.id);
            rule
        }
    };
    let mut collectors = CollectorClient::new(args.target.channel(&COLLECTOR).await?);
    let existing = collectors
        .list_collectors(ListCollectorsRequest {
            tenant: MAIN_TENANT.into(),
            page: Some(PageRequest {
                page_size: 1000,
                ..Default::default()
            }),
        })
        .await
        .map_err(failed)
        .context("listing collectors")?
        .into_inner();
    if let Some(found) = existing
        .collectors
        .iter()
        .find(|c| c.name == COLLECTOR_NAME)
    {
        println!("collector {COLLECTOR_NAME:?} exists ({})", found.id);
        return Ok(());
    }
    let created = collectors
        .create_collector(CollectorConfig {
            name: COLLECTOR_NAME.into(),
            tenant: MAIN_TENANT.into(),
            transport: Transport::Http as i32,
            normalizer: Some(Normalizer {
                mapping: vec![FieldMap {
                    source: "RequestUrl".into(),
                    field: "RequestUrl".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            rule_ids: vec![rule.id],
            // Stored, and raised as alerts when threat intelligence matched (the seed's
            // UserGate story starts from such an alert).
            destinations: vec![
                Destination {
                    kind: DestinationKind::Storage as i32,
                    filter: None,
                },
                Destination {
                    kind: DestinationKind::Alerts as i32,
                    filter: None,
                },
            ],
            description: "The seed's test collector: JSON events, RequestUrl mapped, enriched by Test CT enrichment, stored, and raised as alerts on a threat-intel match (xdrctl quickstart).".into(),
            ..Default::default()
        })
        .await
        .map_err(failed)
        .context("creating the collector")?
        .into_inner();
    println!("created collector {COLLECTOR_NAME:?} ({})", created.id);
    Ok(())
}

async fn find_rule(
    rules: &mut EnrichmentClient<tonic::transport::Channel>,
) -> anyhow::Result<Option<EnrichmentRule>> {
    let shared = crate::rules::all(rules, SHARED_TENANT).await?;
    Ok(shared.into_iter().find(|r| r.name == RULE))
}
