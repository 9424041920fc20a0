//! `xdrctl collector …`: list, show, create and delete collectors. Changes beyond these flags
//! go through `xdrctl call xdr.v1.Collector/UpdateCollector '{json}'`.

use anyhow::{Context, bail};
use tonic::transport::Channel;
use xdr_mesh::directory::{COLLECTOR, ENRICHMENT};
use xdr_proto::pb::{
    CollectorConfig, DeleteCollectorRequest, Delimiter, FieldMap, FieldType, GetCollectorRequest,
    ListCollectorsRequest, Normalizer, PageRequest, Transport, collector_client::CollectorClient,
    enrichment_client::EnrichmentClient,
};

use crate::connect::{Target, failed};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Every collector (of `--tenant`, or all).
    List {
        #[arg(long, default_value = "")]
        tenant: String,
        #[command(flatten)]
        target: Target,
    },
    /// One collector as JSON, by id or name.
    Show {
        collector: String,
        #[command(flatten)]
        target: Target,
    },
    /// A new collector.
    Create(CreateArgs),
    /// Deletes a collector by id.
    Delete {
        id: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// 1 to 128 characters, unique in its tenant.
    name: String,
    #[arg(long, default_value = xdr_mesh::caller::MAIN_TENANT)]
    tenant: String,
    /// A JSON field mapped to an event field: `SOURCE[=FIELD][:TYPE]` (TYPE: text, integer,
    /// number, flag, timestamp; default: the schema's), e.g. `src.ip=SourceAddress`.
    #[arg(long = "map", value_name = "SOURCE[=FIELD][:TYPE]")]
    mapping: Vec<String>,
    /// Keep fields the mapping does not name (they land in `Extra`).
    #[arg(long)]
    keep_unmapped: bool,
    /// An enrichment rule linked to the collector, by name or id, in order.
    #[arg(long = "rule", value_name = "NAME|ID")]
    rules: Vec<String>,
    /// Events are separated by: newline, tab or nul.
    #[arg(long, default_value = "newline")]
    delimiter: String,
    /// The largest event taken, in bytes (default 4 MiB).
    #[arg(long, default_value_t = 0)]
    max_event_bytes: u64,
    /// Input through the gateway's HTTP `/input` instead of gRPC.
    #[arg(long)]
    http: bool,
    /// HTTP input only with a token (`Authorization: Bearer …`): one is made and printed
    /// once; the collector keeps its SHA-256.
    #[arg(long, requires = "http")]
    input_token: bool,
    #[arg(long, default_value = "")]
    description: String,
    #[command(flatten)]
    target: Target,
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::List { tenant, target } => {
            let mut client = CollectorClient::new(target.channel(&COLLECTOR).await?);
            let listed = client
                .list_collectors(ListCollectorsRequest {
                    tenant,
                    page: Some(PageRequest {
                        page_size: 1000,
                        ..Default::default()
                    }),
                })
                .await
                .map_err(failed)?
                .into_inner();
            for c in listed.collectors {
                println!(
                    "{}  {}/{}  rules: {}",
                    c.id,
                    c.tenant,
                    c.name,
                    c.rule_ids.join(",")
                );
            }
            Ok(())
        }
        Command::Show { collector, target } => {
            let mut client = CollectorClient::new(target.channel(&COLLECTOR).await?);
            let found = client
                .get_collector(GetCollectorRequest {
                    id: collector,
                    tenant: String::new(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            print_json(&found)
        }
        Command::Create(args) => {
            let token = args.input_token.then(crate::people::new_input_token);
            let config = CollectorConfig {
                name: args.name.clone(),
                tenant: args.tenant.clone(),
                transport: if args.http {
                    Transport::Http
                } else {
                    Transport::Grpc
                } as i32,
                normalizer: Some(Normalizer {
                    mapping: (args.mapping.iter())
                        .map(|m| mapping_row(m))
                        .collect::<anyhow::Result<_>>()?,
                    keep_unmapped: args.keep_unmapped,
                    ..Default::default()
                }),
                delimiter: match args.delimiter.as_str() {
                    "newline" => Delimiter::Newline,
                    "tab" => Delimiter::Tab,
                    "nul" => Delimiter::Nul,
                    other => bail!("--delimiter {other:?}: newline, tab or nul"),
                } as i32,
                max_event_bytes: args.max_event_bytes,
                rule_ids: rule_ids(&args.target, &args.rules, &args.tenant).await?,
                description: args.description.clone(),
                input_token_sha256: token.as_ref().map(|(_, d)| d.clone()).unwrap_or_default(),
                ..Default::default()
            };
            let mut client = CollectorClient::new(args.target.channel(&COLLECTOR).await?);
            let created = client
                .create_collector(config)
                .await
                .map_err(failed)?
                .into_inner();
            if let Some((token, _)) = token {
                eprintln!(
                    "the collector's input token (shown once; send it as `Authorization: Bearer <token>`):"
                );
                eprintln!("{token}");
            }
            print_json(&created)
        }
        Command::Delete { id, target } => {
            let mut client = CollectorClient::new(target.channel(&COLLECTOR).await?);
            let reply = client
                .delete_collector(DeleteCollectorRequest {
                    id: id.clone(),
                    tenant: String::new(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            if !reply.deleted {
                bail!("no collector {id:?}");
            }
            println!("deleted collector {id}");
            Ok(())
        }
    }
}

fn print_json(config: &CollectorConfig) -> anyhow::Result<()> {
    crate::print_json("xdr.v1.CollectorConfig", config)
}

/// `SOURCE[=FIELD][:TYPE]` as a mapping row.
fn mapping_row(text: &str) -> anyhow::Result<FieldMap> {
    let (rest, kind) = match text.rsplit_once(':') {
        Some((rest, kind)) => (rest, Some(kind)),
        None => (text, None),
    };
    let (source, field) = rest.split_once('=').unwrap_or((rest, ""));
    let kind = match kind {
        None => FieldType::Unspecified,
        Some("text") => FieldType::Text,
        Some("integer") => FieldType::Integer,
        Some("number") => FieldType::Number,
        Some("flag") => FieldType::Flag,
        Some("timestamp") => FieldType::Timestamp,
        Some(other) => bail!("--map {text:?}: no type {other:?}"),
    };
    Ok(FieldMap {
        source: source.to_owned(),
        field: field.to_owned(),
        r#type: kind as i32,
    })
}

/// The ids of the rules `names` names (a name of the collector's tenant or Shared, or an id).
async fn rule_ids(target: &Target, names: &[String], tenant: &str) -> anyhow::Result<Vec<String>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut client: EnrichmentClient<Channel> =
        EnrichmentClient::new(target.channel(&ENRICHMENT).await?);
    let rules = crate::rules::all(&mut client, "").await?;
    names
        .iter()
        .map(|name| {
            rules
                .iter()
                .filter(|r| r.tenant == tenant || r.tenant == xdr_mesh::caller::SHARED_TENANT)
                .find(|r| r.id == *name || r.name == *name)
                .map(|r| r.id.clone())
                .with_context(|| format!("--rule {name:?}: no such rule in {tenant} or Shared"))
        })
        .collect()
}
