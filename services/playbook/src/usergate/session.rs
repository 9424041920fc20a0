//! A signed-in conversation with one appliance: login with an origin, every call carrying
//! the session token, one sign-in again when UserGate says the session expired (fault 104),
//! logout at the end. Each call is written to the session's action log, one line without
//! secrets, for the run's history.

use std::{collections::BTreeMap, time::Duration};

use dxr::Value;
use xdr_mesh::quote::{quoted, truncated};

use super::{
    error::{CallError, FAULT_SESSION_EXPIRED},
    methods::{Call, MethodTable},
    transport::Endpoint,
};

/// What the appliance is told the session is for (`origin` of `v2.core.login`).
const ORIGIN: &str = "xdr-playbook";
/// The longest description of a call kept in the action log.
const MAX_ACTION_TEXT: usize = 300;
/// The longest text of UserGate's kept in a message.
const MAX_FAULT_TEXT: usize = 300;

/// What a session signs in with: a secret's fields.
pub struct Credentials {
    pub url: String,
    pub ca_pem: String,
    pub login: String,
    pub password: String,
}

pub struct Session<'m> {
    endpoint: Endpoint,
    login: String,
    password: String,
    methods: &'m MethodTable,
    token: Option<String>,
    /// Every call made, in order, for the run's history.
    pub actions: Vec<String>,
}

impl<'m> Session<'m> {
    pub fn new(
        credentials: Credentials,
        methods: &'m MethodTable,
        timeout: Duration,
    ) -> Result<Self, CallError> {
        Ok(Session {
            endpoint: Endpoint::new(&credentials.url, &credentials.ca_pem, timeout)?,
            login: credentials.login,
            password: credentials.password,
            methods,
            token: None,
            actions: Vec::new(),
        })
    }

    /// The appliance's URL, for messages.
    pub fn url(&self) -> String {
        self.endpoint.display()
    }

    /// Calls `call` with the session token first and `args` after, signing in first when
    /// there is no session and once more when UserGate says it expired. `describe` is the
    /// action-log line for it.
    pub async fn call(
        &mut self,
        call: Call,
        describe: String,
        args: Vec<Value>,
    ) -> Result<Value, CallError> {
        if self.token.is_none() {
            self.sign_in().await?;
        }
        let method = self.methods.get(call).to_owned();
        // A call may carry a thousand values: the line says what it was, not all of them.
        let describe = truncated(&describe, MAX_ACTION_TEXT).into_owned();
        self.actions.push(format!("{method}({describe})"));
        match self.send(call, &method, &args).await {
            Err(error) if error.is_fault(FAULT_SESSION_EXPIRED) => {
                self.actions
                    .push("session expired (fault 104): signing in again".into());
                self.token = None;
                self.sign_in().await?;
                self.actions.push(format!("{method}({describe})"));
                self.send(call, &method, &args).await
            }
            answer => answer,
        }
    }

    async fn send(&self, call: Call, method: &str, args: &[Value]) -> Result<Value, CallError> {
        let token = self.token.clone().unwrap_or_default();
        let mut params = Vec::with_capacity(args.len() + 1);
        params.push(Value::String(token));
        params.extend_from_slice(args);
        self.measured(call, self.endpoint.call(method, params))
            .await
            .map_err(|e| self.scrubbed(e))
    }

    async fn measured(
        &self,
        call: Call,
        answer: impl std::future::Future<Output = Result<Value, CallError>>,
    ) -> Result<Value, CallError> {
        let started = std::time::Instant::now();
        let answer = answer.await;
        let result = answer.as_ref().map_or_else(CallError::kind, |_| "ok");
        crate::metrics::usergate_call(call.key(), result, started.elapsed());
        answer
    }

    async fn sign_in(&mut self) -> Result<(), CallError> {
        let method = self.methods.get(Call::Login).to_owned();
        self.actions.push(format!(
            "{method}({}, ***, origin {ORIGIN})",
            quoted(&self.login)
        ));
        let options = BTreeMap::from([("origin".to_owned(), Value::String(ORIGIN.into()))]);
        let params = vec![
            Value::String(self.login.clone()),
            Value::String(self.password.clone()),
            Value::Struct(options),
        ];
        let answer = self
            .measured(Call::Login, self.endpoint.call(&method, params))
            .await
            .map_err(|e| match self.scrubbed(e) {
                CallError::Fault { code, message } => CallError::LoginRefused {
                    login: quoted(&self.login).to_string(),
                    code,
                    message,
                },
                other => other,
            })?;
        let token = match &answer {
            Value::Struct(fields) => match fields.get("auth_token") {
                Some(Value::String(token)) if !token.is_empty() => Some(token.clone()),
                _ => None,
            },
            _ => None,
        }
        .ok_or_else(|| CallError::Protocol("the login answer has no auth_token".into()))?;
        self.token = Some(token);
        Ok(())
    }

    /// Ends the session on the appliance; a failure only costs the appliance a session that
    /// expires by itself.
    pub async fn close(mut self) -> Vec<String> {
        if let Some(token) = self.token.take() {
            let method = self.methods.get(Call::Logout).to_owned();
            self.actions.push(format!("{method}()"));
            if let Err(error) = self
                .endpoint
                .call(&method, vec![Value::String(token)])
                .await
            {
                tracing::debug!(%error, "UserGate logout failed");
            }
        }
        self.actions
    }

    /// `error` with UserGate's text bounded and the password never in it, whatever the
    /// appliance echoes.
    fn scrubbed(&self, error: CallError) -> CallError {
        let clean = |text: String| {
            let text = if self.password.is_empty() {
                text
            } else {
                text.replace(&self.password, "***")
            };
            truncated(&text, MAX_FAULT_TEXT).into_owned()
        };
        match error {
            CallError::Fault { code, message } => CallError::Fault {
                code,
                message: clean(message),
            },
            CallError::Protocol(text) => CallError::Protocol(clean(text)),
            CallError::Unreachable(text) => CallError::Unreachable(clean(text)),
            other => other,
        }
    }
}
