//! Secret requests: only those who may manage secrets, passwords in and never out.

use std::sync::Arc;

use tonic::{Request, Status};
use xdr_mesh::caller::Action;
use xdr_proto::pb::{
    CreateSecretRequest, DeleteSecretReply, DeleteSecretRequest, Secret, UpdateSecretRequest,
};

use super::{authorized, blocking};
use crate::{playbooks::Runner, secrets};

pub async fn create(
    runner: &Arc<Runner>,
    request: Request<CreateSecretRequest>,
) -> Result<Secret, Status> {
    let (tenant, _) = authorized(&request, Action::ManageSecrets, &request.get_ref().tenant)?;
    let runner = runner.clone();
    let request = request.into_inner();
    blocking(move || runner.secrets().create(secrets::create(request, tenant)?)).await
}

pub async fn update(
    runner: &Arc<Runner>,
    request: Request<UpdateSecretRequest>,
) -> Result<Secret, Status> {
    let (tenant, _) = authorized(&request, Action::ManageSecrets, &request.get_ref().tenant)?;
    let runner = runner.clone();
    let request = request.into_inner();
    let id = request.id.clone();
    blocking(move || {
        runner
            .secrets()
            .update(&id, secrets::update(request, tenant)?)
    })
    .await
}

pub async fn delete(
    runner: &Arc<Runner>,
    request: Request<DeleteSecretRequest>,
) -> Result<DeleteSecretReply, Status> {
    let (tenant, _) = authorized(&request, Action::ManageSecrets, &request.get_ref().tenant)?;
    let runner = runner.clone();
    let id = request.into_inner().id;
    let deleted = blocking(move || runner.secrets().delete(&tenant, &id)).await?;
    Ok(DeleteSecretReply { deleted })
}
