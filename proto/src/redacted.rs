//! `Debug` for the requests that carry a password, with the password masked: prost's derived
//! one would print it in any debug dump or `{:?}` log field.

use std::fmt;

use crate::pb::{CreateSecretRequest, UpdateSecretRequest};

fn masked(password: &str) -> &'static str {
    if password.is_empty() { "" } else { "***" }
}

impl fmt::Debug for CreateSecretRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateSecretRequest")
            .field("name", &self.name)
            .field("tenant", &self.tenant)
            .field("type", &self.r#type)
            .field("user", &self.user)
            .field("password", &masked(&self.password))
            .field("description", &self.description)
            .field("url", &self.url)
            .field("ca_pem", &self.ca_pem.len())
            .finish()
    }
}

impl fmt::Debug for UpdateSecretRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateSecretRequest")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("user", &self.user)
            .field("password", &masked(&self.password))
            .field("description", &self.description)
            .field("url", &self.url)
            .field("ca_pem", &self.ca_pem.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_dumps_never_show_a_password() {
        let create = CreateSecretRequest {
            name: "usergate".into(),
            password: "hunter2".into(),
            ..Default::default()
        };
        let shown = format!("{create:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("***"),
            "{shown}"
        );
        let update = UpdateSecretRequest {
            password: "hunter2".into(),
            ..Default::default()
        };
        assert!(!format!("{update:#?}").contains("hunter2"));
    }
}
