//! `xdr-playbook`: alerts from threat-intel matches, and response playbooks acting on
//! UserGate UTM with credentials kept as encrypted secrets.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Parser;
use xdr_mesh::{MeshServer, config::ServiceArgs, directory::PLAYBOOK};
use xdr_playbook::{
    access,
    alerts::{self, AlertStore, RaisePolicy, SeverityMap},
    grpc::PlaybookService,
    playbooks::{self, ProtectedSet, Runner, TimedBlocks},
    secrets::{SecretCipher, SecretStore},
    usergate::MethodTable,
};
use xdr_proto::pb::playbook_server::PlaybookServer;

/// Raising alerts decodes, merges and encodes records per event: glibc's malloc took a sixth
/// of the service's time under the e2e bench's alert load (perf); with mimalloc, as the other
/// services use, 640–672 k alert events were delivered in a 30 s run against 607–619 k.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "xdr-playbook",
    version,
    about = "Alerts and response playbooks acting on UserGate UTM."
)]
struct Config {
    /// A TOML file of playbooks beside the built-in ones (`[[playbook]]` tables with
    /// `id`, `title`, `secret` and `[[playbook.steps]]` of kind block, unblock or
    /// logout_users).
    #[arg(long, env = "XDR_PLAYBOOKS")]
    playbooks: Option<PathBuf>,
    /// The key secrets are encrypted with (64 hex digits, mode 0600); made on first start.
    /// Default: `secret.key` in the data directory.
    #[arg(long, env = "XDR_SECRET_KEY_FILE")]
    secret_key_file: Option<PathBuf>,
    /// UserGate XML-RPC method names to use instead of the defaults, `CALL=METHOD` each
    /// (e.g. `logout_user=v1.auth.user.logout`).
    #[arg(
        long = "usergate-method",
        env = "XDR_USERGATE_METHODS",
        value_delimiter = ','
    )]
    usergate_methods: Vec<String>,
    /// Longest wait for one UserGate call.
    #[arg(long, env = "XDR_USERGATE_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    usergate_timeout: Duration,
    /// Networks (CIDR) and addresses playbooks never block; loopback always is.
    #[arg(long, env = "XDR_PROTECTED_NETWORKS", value_delimiter = ',')]
    protected_networks: Vec<String>,
    /// Domain names (and their subdomains) playbooks never block.
    #[arg(long, env = "XDR_PROTECTED_HOSTS", value_delimiter = ',')]
    protected_hosts: Vec<String>,
    /// Events with the same matches join an open alert whose last event is at most this old.
    #[arg(long, env = "XDR_ALERT_GROUP_WINDOW", default_value = "15m", value_parser = humantime::parse_duration)]
    alert_group_window: Duration,
    /// How long a raised event's id is remembered, so the same event sent again is not
    /// counted twice (collectors send again within minutes of an outage).
    #[arg(long, env = "XDR_ALERT_DEDUP_WINDOW", default_value = "7d", value_parser = humantime::parse_duration)]
    alert_dedup_window: Duration,
    /// Alert severity of threat-intel categories, `CATEGORY=low|medium|high|critical` each,
    /// over the defaults taken from the category's words.
    #[arg(
        long = "alert-severity",
        env = "XDR_ALERT_SEVERITY",
        value_delimiter = ','
    )]
    alert_severities: Vec<String>,
    /// How often blocks with a lifetime are checked for removal.
    #[arg(long, env = "XDR_BLOCK_SWEEP_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    block_sweep_interval: Duration,
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = xdr_mesh::config::parse_service(&PLAYBOOK);
    let runtime =
        xdr_mesh::service::start(PLAYBOOK, &config.service).context("starting xdr-playbook")?;
    xdr_playbook::metrics::describe();
    let methods = MethodTable::with_overrides(&config.usergate_methods)
        .map_err(anyhow::Error::msg)
        .context("--usergate-method")?;
    let protected = ProtectedSet::new(&config.protected_networks, &config.protected_hosts)
        .map_err(anyhow::Error::msg)
        .context("--protected-networks")?;
    let severities = SeverityMap::with_overrides(&config.alert_severities)
        .map_err(anyhow::Error::msg)
        .context("--alert-severity")?;
    let definitions = playbooks::load(config.playbooks.as_deref())
        .map_err(anyhow::Error::msg)
        .context("--playbooks")?;
    let data = runtime.data_dir.path().to_owned();
    let key_file = config
        .secret_key_file
        .clone()
        .unwrap_or_else(|| data.join("secret.key"));
    let policy = RaisePolicy {
        window: config.alert_group_window,
        severities,
    };
    let (alerts, secrets, timed_blocks) = tokio::task::spawn_blocking(move || {
        let db = Arc::new(
            redb::Database::create(data.join("playbook.redb")).context("opening playbook.redb")?,
        );
        let cipher = SecretCipher::open_or_create(&key_file).context("the secret key")?;
        let secrets = SecretStore::open(db.clone(), cipher).context("opening the secrets")?;
        let alerts = AlertStore::open(db.clone(), policy).context("opening the alerts")?;
        let timed_blocks = TimedBlocks::open(db).context("opening the timed blocks")?;
        anyhow::Ok((alerts, secrets, timed_blocks))
    })
    .await??;
    let timed_blocks = Arc::new(timed_blocks);
    let runner = Arc::new(Runner::new(
        definitions,
        Arc::new(secrets),
        methods,
        protected,
        config.usergate_timeout,
        timed_blocks.clone(),
    ));
    tokio::spawn(playbooks::sweep_forever(
        timed_blocks,
        runner.clone(),
        config.block_sweep_interval,
        runtime.shutdown.clone(),
    ));
    let alerts = Arc::new(alerts);
    tokio::spawn(alerts::forget_old_event_ids(
        alerts.clone(),
        config.alert_dedup_window,
        runtime.shutdown.clone(),
    ));
    MeshServer::new(&runtime, access::policy())
        .add_service(PlaybookServer::new(PlaybookService::new(alerts, runner)))
        .serve()
        .await
        .context("serving")
}
