//! `xdrctl secret …`: credentials the playbooks sign in with. Passwords are read from
//! standard input, never from the command line (it shows in `ps` and shell history).

use anyhow::Context;
use xdr_mesh::directory::PLAYBOOK;
use xdr_proto::pb::{
    CreateSecretRequest, DeleteSecretRequest, ListSecretsRequest, PageRequest, SecretType,
    UpdateSecretRequest, playbook_client::PlaybookClient,
};

use crate::connect::{Target, failed};

#[derive(clap::Subcommand)]
pub enum Command {
    /// A new `credentials` secret, e.g. `usergate` for the UserGate playbooks; the password
    /// is the first line of standard input.
    Create {
        name: String,
        /// The appliance's API, e.g. `http://usergate.example:4040/rpc`.
        #[arg(long)]
        url: String,
        #[arg(long)]
        user: String,
        /// A PEM file of the CA that signed an https appliance's certificate.
        #[arg(long)]
        ca: Option<std::path::PathBuf>,
        #[arg(long, default_value = xdr_mesh::caller::MAIN_TENANT)]
        tenant: String,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        target: Target,
    },
    /// The secrets of a tenant: names, users and URLs, never passwords.
    List {
        #[arg(long, default_value = xdr_mesh::caller::MAIN_TENANT)]
        tenant: String,
        #[command(flatten)]
        target: Target,
    },
    /// A new password for secret ID (first line of standard input); launches running finish
    /// with the old one.
    Rotate {
        id: String,
        #[arg(long, default_value = xdr_mesh::caller::MAIN_TENANT)]
        tenant: String,
        #[command(flatten)]
        target: Target,
    },
    /// Signs in with secret ID, checks the session and logs out.
    Test {
        id: String,
        #[arg(long, default_value = xdr_mesh::caller::MAIN_TENANT)]
        tenant: String,
        #[command(flatten)]
        target: Target,
    },
    Delete {
        id: String,
        #[arg(long, default_value = xdr_mesh::caller::MAIN_TENANT)]
        tenant: String,
        #[command(flatten)]
        target: Target,
    },
}

fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Create {
            name,
            url,
            user,
            ca,
            tenant,
            description,
            target,
        } => {
            let ca_pem = match ca {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => String::new(),
            };
            let password = password_from_stdin()?;
            let made = PlaybookClient::new(target.channel(&PLAYBOOK).await?)
                .create_secret(CreateSecretRequest {
                    name,
                    tenant,
                    r#type: SecretType::Credentials as i32,
                    user,
                    password,
                    description,
                    url,
                    ca_pem,
                })
                .await
                .map_err(failed)?
                .into_inner();
            println!(
                "created secret {:?} in {} ({})",
                made.name, made.tenant, made.id
            );
            Ok(())
        }
        Command::List { tenant, target } => {
            let listed = PlaybookClient::new(target.channel(&PLAYBOOK).await?)
                .list_secrets(ListSecretsRequest {
                    tenant,
                    page: Some(PageRequest {
                        page_size: 1000,
                        ..Default::default()
                    }),
                })
                .await
                .map_err(failed)?
                .into_inner();
            for secret in listed.secrets {
                println!(
                    "{}  {}/{}  {}@{}",
                    secret.id, secret.tenant, secret.name, secret.user, secret.url
                );
            }
            Ok(())
        }
        Command::Rotate { id, tenant, target } => {
            let mut client = PlaybookClient::new(target.channel(&PLAYBOOK).await?);
            let current = client
                .get_secret(xdr_proto::pb::GetSecretRequest {
                    id: id.clone(),
                    tenant: tenant.clone(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            let password = password_from_stdin()?;
            client
                .update_secret(UpdateSecretRequest {
                    id,
                    tenant,
                    user: current.user,
                    password,
                    description: current.description,
                    url: current.url,
                    ca_pem: current.ca_pem,
                })
                .await
                .map_err(failed)?;
            println!("the password of {:?} is replaced", current.name);
            Ok(())
        }
        Command::Test { id, tenant, target } => {
            let tested = PlaybookClient::new(target.channel(&PLAYBOOK).await?)
                .test_secret(xdr_proto::pb::TestSecretRequest { id, tenant })
                .await
                .map_err(failed)?
                .into_inner();
            for action in &tested.actions {
                println!("  sent: {action}");
            }
            println!("{}", tested.message);
            anyhow::ensure!(tested.ok, "the secret does not work");
            Ok(())
        }
        Command::Delete { id, tenant, target } => {
            let deleted = PlaybookClient::new(target.channel(&PLAYBOOK).await?)
                .delete_secret(DeleteSecretRequest { id, tenant })
                .await
                .map_err(failed)?
                .into_inner()
                .deleted;
            println!("{}", if deleted { "deleted" } else { "no such secret" });
            Ok(())
        }
    }
}
