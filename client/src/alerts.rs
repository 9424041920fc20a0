//! `xdrctl alerts …`: list alerts, show one with its history, change its status or assignee.

use tonic::transport::Channel;
use xdr_mesh::directory::PLAYBOOK;
use xdr_proto::pb::{
    AlertStatus, GetAlertRequest, ListAlertsRequest, PageRequest, UpdateAlertRequest,
    playbook_client::PlaybookClient,
};

use crate::connect::{Target, failed};

#[derive(clap::Subcommand)]
pub enum Command {
    /// The newest alerts of a tenant.
    List {
        #[arg(long, default_value = xdr_mesh::caller::MAIN_TENANT)]
        tenant: String,
        /// Only alerts with this status: new, in-progress or closed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        target: Target,
    },
    /// One alert as JSON: its events, observables and history.
    Show {
        id: String,
        #[arg(long, default_value = xdr_mesh::caller::MAIN_TENANT)]
        tenant: String,
        #[command(flatten)]
        target: Target,
    },
    /// Changes an alert's status (new, in-progress, closed) or assignee.
    Update {
        id: String,
        #[arg(long, default_value = xdr_mesh::caller::MAIN_TENANT)]
        tenant: String,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        assignee: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

pub fn status_named(name: &str) -> anyhow::Result<AlertStatus> {
    match name {
        "new" => Ok(AlertStatus::New),
        "in-progress" => Ok(AlertStatus::InProgress),
        "closed" => Ok(AlertStatus::Closed),
        other => anyhow::bail!("status {other:?}: new, in-progress or closed"),
    }
}

async fn client(target: &Target) -> anyhow::Result<PlaybookClient<Channel>> {
    Ok(PlaybookClient::new(target.channel(&PLAYBOOK).await?))
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::List {
            tenant,
            status,
            limit,
            target,
        } => {
            let statuses = match status {
                Some(name) => vec![status_named(&name)? as i32],
                None => Vec::new(),
            };
            let listed = client(&target)
                .await?
                .list_alerts(ListAlertsRequest {
                    tenant,
                    statuses,
                    page: Some(PageRequest {
                        page_size: limit,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .map_err(failed)?
                .into_inner();
            for alert in listed.alerts {
                println!(
                    "{}  {:?}  {:?}  events: {}  {}",
                    alert.id,
                    alert.severity(),
                    alert.status(),
                    alert.event_count,
                    alert.title
                );
            }
            Ok(())
        }
        Command::Show { id, tenant, target } => {
            let alert = client(&target)
                .await?
                .get_alert(GetAlertRequest { id, tenant })
                .await
                .map_err(failed)?
                .into_inner();
            crate::print_json("xdr.v1.Alert", &alert)
        }
        Command::Update {
            id,
            tenant,
            status,
            assignee,
            target,
        } => {
            let status = status.as_deref().map(status_named).transpose()?;
            let alert = client(&target)
                .await?
                .update_alert(UpdateAlertRequest {
                    id,
                    tenant,
                    status: status.map_or(0, |s| s as i32),
                    assignee,
                })
                .await
                .map_err(failed)?
                .into_inner();
            println!(
                "{}  {:?}  assignee: {:?}",
                alert.id,
                alert.status(),
                alert.assignee
            );
            Ok(())
        }
    }
}
