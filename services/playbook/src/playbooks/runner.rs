//! Running a playbook: pick the observables it may act on, sign in with its secret, carry out
//! its steps, and say what happened — every item done or not and why, the calls made, and
//! one message for the analyst. A failure of one call costs its items; a failure that ends
//! the session (unreachable, login refused) ends the run.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::Semaphore;
use xdr_mesh::quote::{quoted, truncated};
use xdr_proto::pb::{IndicatorType, Observable, PlaybookRun, RunItem, RunOutcome};

use super::{
    definition::{PlaybookDefinition, Step},
    protected::ProtectedSet,
    steps,
    timed_blocks::{TimedBlock, TimedBlocks},
};
use xdr_mesh::clock::now_ms;

use crate::{
    secrets::SecretStore,
    usergate::{ListKind, MethodTable, Session},
};

/// The longest message shown for a run (the items say the rest).
const MAX_MESSAGE: usize = 2000;
/// Launches running at once, and of one tenant; more are refused rather than queued behind
/// a slow appliance (one tenant cannot take every slot).
const MAX_RUNNING: usize = 16;
const MAX_RUNNING_PER_TENANT: usize = 4;

pub struct Runner {
    playbooks: Vec<PlaybookDefinition>,
    secrets: Arc<SecretStore>,
    methods: MethodTable,
    protected: ProtectedSet,
    timeout: Duration,
    timed_blocks: Arc<TimedBlocks>,
    running: Semaphore,
    running_by_tenant: Mutex<HashMap<String, usize>>,
}

/// A tenant's share of the running launches, given back when dropped.
struct TenantSlot<'r> {
    runner: &'r Runner,
    tenant: String,
}

impl Drop for TenantSlot<'_> {
    fn drop(&mut self) {
        let mut running = self.runner.running_by_tenant.lock().expect("slots lock");
        if let Some(count) = running.get_mut(&self.tenant) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.tenant);
            }
        }
    }
}

/// One launch, as the caller asked for it.
pub struct Launch {
    pub playbook: PlaybookDefinition,
    pub tenant: String,
    pub by: String,
    /// The alert's (or incident's) observables and those named at launch.
    pub observables: Vec<Observable>,
    pub named: Vec<Observable>,
    pub dry_run: bool,
    pub block_for: Option<Duration>,
}

/// What a run gathers as it goes.
#[derive(Default)]
pub struct RunLog {
    pub items: Vec<RunItem>,
    pub actions: Vec<String>,
    /// Problems that are not one item's (a rule that could not be made).
    pub problems: Vec<String>,
    /// The error that ended the run early.
    pub fatal: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Busy {
    #[error("{MAX_RUNNING} playbook launches are running: try again when one has finished")]
    Service,
    #[error("tenant {} has {MAX_RUNNING_PER_TENANT} playbook launches running: try again when one has finished", quoted(.0))]
    Tenant(String),
}

impl Runner {
    pub fn new(
        playbooks: Vec<PlaybookDefinition>,
        secrets: Arc<SecretStore>,
        methods: MethodTable,
        protected: ProtectedSet,
        timeout: Duration,
        timed_blocks: Arc<TimedBlocks>,
    ) -> Self {
        Runner {
            playbooks,
            secrets,
            methods,
            protected,
            timeout,
            timed_blocks,
            running: Semaphore::new(MAX_RUNNING),
            running_by_tenant: Mutex::new(HashMap::new()),
        }
    }

    pub fn playbooks(&self) -> &[PlaybookDefinition] {
        &self.playbooks
    }

    pub fn find(&self, id: &str) -> Option<&PlaybookDefinition> {
        self.playbooks.iter().find(|p| p.id == id)
    }

    pub fn secrets(&self) -> &SecretStore {
        &self.secrets
    }

    pub fn methods(&self) -> &MethodTable {
        &self.methods
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn run(&self, launch: Launch) -> Result<PlaybookRun, Busy> {
        let _slot = self.running.try_acquire().map_err(|_| Busy::Service)?;
        let _tenant_slot = self.tenant_slot(&launch.tenant)?;
        let mut run = PlaybookRun {
            playbook: launch.playbook.id.clone(),
            launched_by: launch.by.clone(),
            launched_at_ms: now_ms(),
            ..PlaybookRun::default()
        };
        let mut log = RunLog::default();
        let outcome = self.carry_out(&launch, &mut run, &mut log).await;
        run.items = log.items;
        run.actions = log.actions;
        let (outcome, message) = match outcome {
            Some(fixed) => fixed,
            None => summary(&launch.playbook.title, &run.items, &log.problems, log.fatal),
        };
        run.outcome = outcome as i32;
        run.succeeded = outcome == RunOutcome::Succeeded;
        run.message = message;
        tracing::info!(
            playbook = %run.playbook, by = %quoted(&run.launched_by), outcome = ?outcome,
            "playbook run"
        );
        crate::metrics::launch(&run.playbook, outcome.as_str_name());
        Ok(run)
    }

    fn tenant_slot(&self, tenant: &str) -> Result<TenantSlot<'_>, Busy> {
        let mut running = self.running_by_tenant.lock().expect("slots lock");
        let count = running.entry(tenant.to_owned()).or_insert(0);
        if *count >= MAX_RUNNING_PER_TENANT {
            return Err(Busy::Tenant(tenant.to_owned()));
        }
        *count += 1;
        Ok(TenantSlot {
            runner: self,
            tenant: tenant.to_owned(),
        })
    }

    /// Carries the steps out, or gives the outcome when there is nothing to do.
    async fn carry_out(
        &self,
        launch: &Launch,
        run: &mut PlaybookRun,
        log: &mut RunLog,
    ) -> Option<(RunOutcome, String)> {
        let credentials = match self
            .secrets
            .credentials(&launch.tenant, &launch.playbook.secret)
        {
            Ok(credentials) => credentials,
            Err(error) => return Some((RunOutcome::Failed, error.to_string())),
        };
        let mut protected = self.protected.clone();
        if let Some((_, host)) = crate::alerts::host_of(&credentials.url) {
            protected.add_host(&host);
        }
        let targets = targets(launch, &protected, &mut run.protected);
        let needs_targets = launch.playbook.steps.iter().any(Step::takes_observables);
        if needs_targets && targets.is_empty() {
            return Some((
                RunOutcome::Failed,
                "nothing to act on: no threat observable outside the protected networks and hosts"
                    .into(),
            ));
        }
        let mut session = match Session::new(credentials, &self.methods, self.timeout) {
            Ok(session) => session,
            Err(error) => return Some((RunOutcome::Failed, error.to_string())),
        };
        if launch.dry_run {
            log.actions.push(format!("sign in to {}", session.url()));
            for step in &launch.playbook.steps {
                steps::plan(step, &targets, log);
            }
            return Some((
                RunOutcome::DryRun,
                format!(
                    "Dry run of {}: nothing was sent; {} items would be acted on",
                    launch.playbook.title,
                    log.items.len()
                ),
            ));
        }
        for step in &launch.playbook.steps {
            let added = steps::carry_out(step, &mut session, &targets, log).await;
            if let Some(lifetime) = launch.block_for {
                self.remember(launch, added, lifetime, log);
            }
            if log.fatal.is_some() {
                break;
            }
        }
        log.actions.splice(0..0, session.close().await);
        None
    }

    /// Writes the values a block step added, so they are removed when `lifetime` is over.
    fn remember(
        &self,
        launch: &Launch,
        added: Vec<(ListKind, String, String)>,
        lifetime: Duration,
        log: &mut RunLog,
    ) {
        let expires_at_ms = now_ms() + lifetime.as_millis() as i64;
        let blocks: Vec<TimedBlock> = added
            .into_iter()
            .map(|(kind, list, value)| TimedBlock {
                expires_at_ms,
                tenant: launch.tenant.clone(),
                secret: launch.playbook.secret.clone(),
                network: kind == ListKind::Network,
                list,
                value,
            })
            .collect();
        if let Err(error) = self.timed_blocks.add(&blocks) {
            log.problems
                .push(format!("the block lifetime could not be recorded: {error}"));
        }
    }
}

/// What a launch acts on: matched observables and those named, minus protected ones (named
/// in `protected_out`) and hashes (UserGate lists hold addresses and URLs).
fn targets(
    launch: &Launch,
    protected: &ProtectedSet,
    protected_out: &mut Vec<String>,
) -> Vec<Observable> {
    let mut targets: Vec<Observable> = Vec::new();
    let wanted = launch
        .observables
        .iter()
        .filter(|o| !o.category.is_empty())
        .chain(&launch.named);
    for observable in wanted {
        if observable.r#type == IndicatorType::Hash as i32
            || targets
                .iter()
                .any(|t| t.r#type == observable.r#type && t.value == observable.value)
        {
            continue;
        }
        if protected.covers(observable) {
            if !protected_out.contains(&observable.value) {
                protected_out.push(observable.value.clone());
            }
            continue;
        }
        targets.push(observable.clone());
    }
    targets
}

/// The outcome and the analyst's message from the items and problems of a run.
fn summary(
    title: &str,
    items: &[RunItem],
    problems: &[String],
    fatal: Option<String>,
) -> (RunOutcome, String) {
    let done: Vec<&str> = items
        .iter()
        .filter(|i| i.done)
        .map(|i| i.value.as_str())
        .collect();
    let not_done: Vec<String> = items
        .iter()
        .filter(|i| !i.done)
        .map(|i| format!("{} ({})", i.value, i.note))
        .collect();
    let mut problems = problems.to_vec();
    match fatal {
        Some(fatal) if done.is_empty() => {
            return (RunOutcome::Failed, format!("{title} failed: {fatal}"));
        }
        Some(fatal) => problems.push(format!("stopped early: {fatal}")),
        None => {}
    }
    if not_done.is_empty() && problems.is_empty() {
        let what = if done.is_empty() {
            "nothing needed doing".to_owned()
        } else {
            done.join(", ")
        };
        return (RunOutcome::Succeeded, format!("{title} succeeded: {what}"));
    }
    if done.is_empty() {
        let mut reasons = not_done;
        reasons.extend(problems);
        return (
            RunOutcome::Failed,
            format!("{title} failed: {}", reasons.join("; ")),
        );
    }
    let mut message = format!("{title} partly done. Done: {}.", done.join(", "));
    if !not_done.is_empty() {
        message.push_str(&format!(" Not done: {}.", not_done.join(", ")));
    }
    for problem in problems {
        message.push_str(&format!(" {problem}."));
    }
    (
        RunOutcome::Partial,
        truncated(&message, MAX_MESSAGE).into_owned(),
    )
}
