//! The `xdr.v1.Playbook` gRPC adapter: who the caller is and what they may do, the request
//! into domain calls (store work off the async runtime), domain errors into statuses.
//! Alerts and incidents are in `alerts.rs`, launches in `launch.rs`, secrets in `secrets.rs`.

mod alerts;
mod launch;
mod secrets;

use std::sync::Arc;

use tonic::{Request, Response, Status};
use xdr_mesh::{
    caller::{Action, Caller, MAIN_TENANT},
    error::ServiceError,
};
use xdr_proto::pb::{
    Alert, CreateAlertRequest, CreateIncidentRequest, CreateSecretRequest, DeleteSecretReply,
    DeleteSecretRequest, GetAlertRequest, GetIncidentRequest, GetSecretRequest, Incident,
    LaunchPlaybookRequest, ListAlertsReply, ListAlertsRequest, ListIncidentsReply,
    ListIncidentsRequest, ListPlaybooksReply, ListPlaybooksRequest, ListSecretsReply,
    ListSecretsRequest, PlaybookRun, RaiseAlertsReply, RaiseAlertsRequest, Secret, TestSecretReply,
    TestSecretRequest, UpdateAlertRequest, UpdateIncidentRequest, UpdateSecretRequest,
    playbook_server::Playbook,
};

use crate::{alerts::AlertStore, playbooks::Runner};

pub struct PlaybookService {
    alerts: Arc<AlertStore>,
    runner: Arc<Runner>,
}

impl PlaybookService {
    pub fn new(alerts: Arc<AlertStore>, runner: Arc<Runner>) -> Self {
        PlaybookService { alerts, runner }
    }
}

/// The tenant a request acts in (the caller's when it names none; `Main` for an operator)
/// once the caller may do `action` there, and who the caller is for the history.
fn authorized<T>(
    request: &Request<T>,
    action: Action,
    tenant: &str,
) -> Result<(String, String), Status> {
    let caller = Caller::of(request)?;
    let mut tenant = caller.tenant_of(tenant)?;
    if tenant.is_empty() {
        tenant = MAIN_TENANT.to_owned();
    }
    caller.may(action, &tenant)?;
    let by = match &caller.person {
        Some(person) => person.user.clone(),
        None => caller.identity.name().to_owned(),
    };
    Ok((tenant, by))
}

/// Runs `work` off the async runtime (the stores write to disk).
async fn blocking<T: Send + 'static, E: ServiceError + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Status::internal(format!("store task failed: {e}")))?
        .map_err(|e| e.to_status())
}

#[tonic::async_trait]
impl Playbook for PlaybookService {
    async fn raise_alerts(
        &self,
        request: Request<RaiseAlertsRequest>,
    ) -> Result<Response<RaiseAlertsReply>, Status> {
        alerts::raise(&self.alerts, request)
            .await
            .map(Response::new)
    }

    async fn create_alert(
        &self,
        request: Request<CreateAlertRequest>,
    ) -> Result<Response<Alert>, Status> {
        alerts::create(&self.alerts, request)
            .await
            .map(Response::new)
    }

    async fn get_alert(
        &self,
        request: Request<GetAlertRequest>,
    ) -> Result<Response<Alert>, Status> {
        let (tenant, _) = authorized(&request, Action::Read, &request.get_ref().tenant)?;
        let id = request.into_inner().id;
        let store = self.alerts.clone();
        blocking(move || store.get(&tenant, &id))
            .await
            .map(Response::new)
    }

    async fn list_alerts(
        &self,
        request: Request<ListAlertsRequest>,
    ) -> Result<Response<ListAlertsReply>, Status> {
        alerts::list(&self.alerts, request).await.map(Response::new)
    }

    async fn update_alert(
        &self,
        request: Request<UpdateAlertRequest>,
    ) -> Result<Response<Alert>, Status> {
        alerts::update(&self.alerts, request)
            .await
            .map(Response::new)
    }

    async fn create_incident(
        &self,
        request: Request<CreateIncidentRequest>,
    ) -> Result<Response<Incident>, Status> {
        alerts::create_incident(&self.alerts, request)
            .await
            .map(Response::new)
    }

    async fn get_incident(
        &self,
        request: Request<GetIncidentRequest>,
    ) -> Result<Response<Incident>, Status> {
        let (tenant, _) = authorized(&request, Action::Read, &request.get_ref().tenant)?;
        let id = request.into_inner().id;
        let store = self.alerts.clone();
        blocking(move || store.get_incident(&tenant, &id))
            .await
            .map(Response::new)
    }

    async fn list_incidents(
        &self,
        request: Request<ListIncidentsRequest>,
    ) -> Result<Response<ListIncidentsReply>, Status> {
        alerts::list_incidents(&self.alerts, request)
            .await
            .map(Response::new)
    }

    async fn update_incident(
        &self,
        request: Request<UpdateIncidentRequest>,
    ) -> Result<Response<Incident>, Status> {
        alerts::update_incident(&self.alerts, request)
            .await
            .map(Response::new)
    }

    async fn list_playbooks(
        &self,
        request: Request<ListPlaybooksRequest>,
    ) -> Result<Response<ListPlaybooksReply>, Status> {
        Caller::of(&request)?.may_globally(Action::Read)?;
        Ok(Response::new(ListPlaybooksReply {
            playbooks: self.runner.playbooks().iter().map(|p| p.info()).collect(),
        }))
    }

    async fn launch_playbook(
        &self,
        request: Request<LaunchPlaybookRequest>,
    ) -> Result<Response<PlaybookRun>, Status> {
        launch::launch(&self.alerts, &self.runner, request)
            .await
            .map(Response::new)
    }

    async fn create_secret(
        &self,
        request: Request<CreateSecretRequest>,
    ) -> Result<Response<Secret>, Status> {
        secrets::create(&self.runner, request)
            .await
            .map(Response::new)
    }

    async fn update_secret(
        &self,
        request: Request<UpdateSecretRequest>,
    ) -> Result<Response<Secret>, Status> {
        secrets::update(&self.runner, request)
            .await
            .map(Response::new)
    }

    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<Secret>, Status> {
        let (tenant, _) = authorized(&request, Action::ManageSecrets, &request.get_ref().tenant)?;
        self.runner
            .secrets()
            .get(&tenant, &request.get_ref().id)
            .map(Response::new)
            .map_err(|e| e.to_status())
    }

    async fn list_secrets(
        &self,
        request: Request<ListSecretsRequest>,
    ) -> Result<Response<ListSecretsReply>, Status> {
        let (tenant, _) = authorized(&request, Action::ManageSecrets, &request.get_ref().tenant)?;
        let secrets = self.runner.secrets().list(&tenant);
        let (secrets, page) = xdr_mesh::page::page_of(&secrets, request.get_ref().page.as_ref())?;
        Ok(Response::new(ListSecretsReply {
            secrets,
            page: Some(page),
        }))
    }

    async fn test_secret(
        &self,
        request: Request<TestSecretRequest>,
    ) -> Result<Response<TestSecretReply>, Status> {
        secrets::test(&self.runner, request)
            .await
            .map(Response::new)
    }

    async fn delete_secret(
        &self,
        request: Request<DeleteSecretRequest>,
    ) -> Result<Response<DeleteSecretReply>, Status> {
        secrets::delete(&self.runner, request)
            .await
            .map(Response::new)
    }
}
