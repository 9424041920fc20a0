//! `xdrctl playbook …`: the playbooks there are, and launching one on an alert or incident.

use std::time::Duration;

use anyhow::bail;
use xdr_mesh::directory::PLAYBOOK;
use xdr_proto::pb::{
    IndicatorType, LaunchPlaybookRequest, ListPlaybooksRequest, Observable, RunOutcome,
    playbook_client::PlaybookClient,
};

use crate::connect::{Target, failed};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Every playbook: id, title, steps and the secret it signs in with.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Launches playbook NAME (its id, e.g. `usergate.block_host`) on an alert or incident.
    Run(RunArgs),
}

#[derive(clap::Args)]
pub struct RunArgs {
    name: String,
    #[arg(long, required_unless_present = "incident")]
    alert: Option<String>,
    #[arg(long, conflicts_with = "alert")]
    incident: Option<String>,
    #[arg(long, default_value = xdr_mesh::caller::MAIN_TENANT)]
    tenant: String,
    /// Show what would be sent; send nothing.
    #[arg(long)]
    dry_run: bool,
    /// More to act on: `ip:VALUE`, `url:VALUE` or `domain:VALUE`.
    #[arg(long = "observable", value_name = "TYPE:VALUE")]
    observables: Vec<String>,
    /// Remove the block after this long (`1h`, `7d`).
    #[arg(long, value_parser = humantime::parse_duration)]
    block_for: Option<Duration>,
    #[command(flatten)]
    target: Target,
}

fn observable(text: &str) -> anyhow::Result<Observable> {
    let (kind, value) = text
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("{text:?}: not TYPE:VALUE"))?;
    let r#type = match kind {
        "ip" => IndicatorType::Ip,
        "url" => IndicatorType::Url,
        "domain" => IndicatorType::Domain,
        other => bail!("{other:?}: ip, url or domain"),
    };
    Ok(Observable {
        r#type: r#type as i32,
        value: value.to_owned(),
        ..Default::default()
    })
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::List { target } => {
            let listed = PlaybookClient::new(target.channel(&PLAYBOOK).await?)
                .list_playbooks(ListPlaybooksRequest {})
                .await
                .map_err(failed)?
                .into_inner();
            for playbook in listed.playbooks {
                println!(
                    "{}  {:?}  steps: {}  secret: {}",
                    playbook.id,
                    playbook.title,
                    playbook.steps.join(","),
                    playbook.secret
                );
            }
            Ok(())
        }
        Command::Run(args) => {
            let request = LaunchPlaybookRequest {
                playbook_id: args.name,
                alert_id: args.alert.unwrap_or_default(),
                incident_id: args.incident.unwrap_or_default(),
                tenant: args.tenant,
                dry_run: args.dry_run,
                observables: args
                    .observables
                    .iter()
                    .map(|o| observable(o))
                    .collect::<anyhow::Result<_>>()?,
                block_seconds: args.block_for.map_or(0, |d| d.as_secs() as u32),
            };
            let run = PlaybookClient::new(args.target.channel(&PLAYBOOK).await?)
                .launch_playbook(request)
                .await
                .map_err(failed)?
                .into_inner();
            for action in &run.actions {
                println!("  sent: {action}");
            }
            for item in &run.items {
                let mark = if item.done { "done" } else { "NOT done" };
                println!("  {mark}: {} ({}; {})", item.value, item.target, item.note);
            }
            for value in &run.protected {
                println!("  protected, left out: {value}");
            }
            println!("{}", run.message);
            match run.outcome() {
                RunOutcome::Succeeded | RunOutcome::DryRun => Ok(()),
                outcome => bail!("the playbook run ended {outcome:?}"),
            }
        }
    }
}
