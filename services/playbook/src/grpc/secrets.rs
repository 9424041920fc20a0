//! Secret requests: only those who may manage secrets, passwords in and never out.

use std::sync::Arc;

use tonic::{Request, Status};
use xdr_mesh::caller::Action;
use xdr_proto::pb::{
    CreateSecretRequest, DeleteSecretReply, DeleteSecretRequest, Secret, TestSecretReply,
    TestSecretRequest, UpdateSecretRequest,
};

use super::{authorized, blocking};
use crate::{playbooks::Runner, secrets, usergate::Session};

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

/// Signs in with the secret, pings the session and logs out.
pub async fn test(
    runner: &Arc<Runner>,
    request: Request<TestSecretRequest>,
) -> Result<TestSecretReply, Status> {
    let (tenant, _) = authorized(&request, Action::ManageSecrets, &request.get_ref().tenant)?;
    let id = request.into_inner().id;
    let credentials = {
        let runner = runner.clone();
        blocking(move || runner.secrets().credentials_by_id(&tenant, &id)).await?
    };
    let mut session = match Session::new(credentials, runner.methods(), runner.timeout()) {
        Ok(session) => session,
        Err(error) => {
            return Ok(TestSecretReply {
                ok: false,
                message: error.to_string(),
                actions: Vec::new(),
            });
        }
    };
    let url = session.url();
    let checked = session.ping().await;
    let actions = session.close().await;
    Ok(match checked {
        Ok(()) => TestSecretReply {
            ok: true,
            message: format!("signed in to {url}; the session answered"),
            actions,
        },
        Err(error) => TestSecretReply {
            ok: false,
            message: error.to_string(),
            actions,
        },
    })
}
