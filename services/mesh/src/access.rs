//! Per-method allow lists of caller identities, enforced by a tower layer in front of every
//! service of a server, which also resolves the [`Caller`] handlers see.
//!
//! Each service declares its policy next to its code; the mesh adds health and reflection,
//! which any mesh identity may call. A method with no rule is denied: the policy fails closed.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
    task::{Context, Poll},
};

use tonic::{Status, body::Body};
use tower::{Layer, Service};

use crate::{
    BoxFuture, caller::Caller, directory, identity::Identity, listener::PeerInfo,
    log_limit::LogLimiter, quote::quoted,
};

/// Who may call a method or every method of a service.
#[derive(Clone, Debug)]
pub enum Allowed {
    /// Any certificate issued by the mesh CA that carries a mesh identity.
    AnyMeshIdentity,
    /// Only these identity names.
    Only(BTreeSet<String>),
}

impl Allowed {
    fn permits(&self, identity: &Identity) -> bool {
        match self {
            Allowed::AnyMeshIdentity => true,
            Allowed::Only(names) => names.contains(identity.name()),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("access policy names `{0}`, which this server does not serve")]
    UnknownRpc(String),
    #[error("access policy allows `{0}`, which is not a mesh identity (a service or `operator`)")]
    UnknownIdentity(String),
}

/// The allow lists of one server, keyed by gRPC service (`xdr.v1.ThreatIntel`) and by
/// method (`xdr.v1.ThreatIntel/Lookup`); a method rule wins over its service's rule.
#[derive(Clone, Debug, Default)]
pub struct AccessPolicy {
    services: HashMap<String, Allowed>,
    methods: HashMap<String, Allowed>,
}

impl AccessPolicy {
    /// A policy letting every mesh identity use health checks and reflection, and nothing else.
    pub fn new() -> Self {
        AccessPolicy::default()
            .allow_service_to_mesh("grpc.health.v1.Health")
            .allow_service_to_mesh("grpc.reflection.v1.ServerReflection")
            .allow_service_to_mesh("grpc.reflection.v1alpha.ServerReflection")
    }

    pub fn allow_service(mut self, service: &str, identities: &[&str]) -> Self {
        self.services.insert(service.to_owned(), only(identities));
        self
    }

    pub fn allow_service_to_mesh(mut self, service: &str) -> Self {
        self.services
            .insert(service.to_owned(), Allowed::AnyMeshIdentity);
        self
    }

    pub fn allow_method(mut self, service: &str, method: &str, identities: &[&str]) -> Self {
        self.methods
            .insert(format!("{service}/{method}"), only(identities));
        self
    }

    /// Fails when a rule names a service or method missing from `served` (paths of the form
    /// `pkg.Service/Method`), or an identity the mesh does not issue: a typo in a policy
    /// would otherwise deny or allow silently.
    pub fn validate<'a>(
        &self,
        served: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), PolicyError> {
        let served: BTreeSet<&str> = served.into_iter().collect();
        let services: BTreeSet<&str> = served
            .iter()
            .filter_map(|path| path.split_once('/'))
            .map(|(s, _)| s)
            .collect();
        if let Some(unknown) = self.methods.keys().find(|m| !served.contains(m.as_str())) {
            return Err(PolicyError::UnknownRpc(unknown.clone()));
        }
        if let Some(unknown) = self
            .services
            .keys()
            .find(|s| !services.contains(s.as_str()))
        {
            return Err(PolicyError::UnknownRpc(unknown.clone()));
        }
        let named = self.services.values().chain(self.methods.values());
        for allowed in named {
            if let Allowed::Only(names) = allowed
                && let Some(unknown) = names.iter().find(|n| !directory::is_identity(n))
            {
                return Err(PolicyError::UnknownIdentity(unknown.clone()));
            }
        }
        Ok(())
    }

    /// Whether `caller` may call the RPC at `path` (`/pkg.Service/Method`).
    pub fn check(&self, path: &str, caller: &Identity) -> Result<(), Status> {
        let rpc = path.strip_prefix('/').unwrap_or(path);
        let service = rpc.split_once('/').map_or(rpc, |(service, _)| service);
        let rule = self.methods.get(rpc).or_else(|| self.services.get(service));
        match rule {
            Some(allowed) if allowed.permits(caller) => Ok(()),
            Some(_) => Err(Status::permission_denied(format!(
                "{caller} may not call {path}"
            ))),
            None => Err(Status::permission_denied(format!(
                "{path} is not open to any caller ({caller})"
            ))),
        }
    }
}

fn only(identities: &[&str]) -> Allowed {
    Allowed::Only(identities.iter().map(|s| (*s).to_owned()).collect())
}

/// Applies an [`AccessPolicy`] to every request, using the identity the TLS listener
/// resolved for the connection.
#[derive(Clone)]
pub struct AccessLayer {
    policy: Arc<AccessPolicy>,
    /// A caller decides how many of its calls are denied: their warnings are rate-limited.
    denials: Arc<LogLimiter>,
}

impl AccessLayer {
    pub fn new(policy: AccessPolicy) -> Self {
        AccessLayer {
            policy: Arc::new(policy),
            denials: Arc::default(),
        }
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = AccessControl<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessControl {
            inner,
            policy: self.policy.clone(),
            denials: self.denials.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AccessControl<S> {
    inner: S,
    policy: Arc<AccessPolicy>,
    denials: Arc<LogLimiter>,
}

impl<S> Service<http::Request<Body>> for AccessControl<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path();
        let peer = request.extensions().get::<PeerInfo>();
        let verdict = match peer.map(|peer| &peer.identity) {
            Some(Ok(identity)) => self
                .policy
                .check(path, identity)
                .and_then(|()| Caller::resolve(identity, request.headers())),
            Some(Err(why)) => Err(Status::permission_denied(format!("{path}: {why}"))),
            // Every connection comes through the mesh listener; a request without its
            // PeerInfo means the server was wired without it, which must not open the door.
            None => Err(Status::permission_denied(format!(
                "{path}: the caller's identity is unknown"
            ))),
        };
        match verdict {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Box::pin(self.inner.call(request))
            }
            Err(status) => {
                if let Some(suppressed) = self.denials.admit() {
                    let remote = peer.map(|p| p.remote_addr.to_string()).unwrap_or_default();
                    tracing::warn!(rpc = %quoted(path), %remote, reason = status.message(), suppressed, "permission denied");
                }
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn policy() -> AccessPolicy {
        AccessPolicy::new()
            .allow_service("xdr.v1.ThreatIntel", &["gateway", "operator"])
            .allow_method(
                "xdr.v1.ThreatIntel",
                "Lookup",
                &["enrichment", "gateway", "operator"],
            )
    }

    fn id(name: &str) -> Identity {
        Identity::new(name).unwrap()
    }

    #[test]
    fn method_rule_wins_over_service_rule() {
        let p = policy();
        assert!(
            p.check("/xdr.v1.ThreatIntel/Lookup", &id("enrichment"))
                .is_ok()
        );
        let denied = p
            .check("/xdr.v1.ThreatIntel/AddIndicators", &id("enrichment"))
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
        assert!(
            denied.message().contains("spiffe://xdr.local/enrichment"),
            "{}",
            denied.message()
        );
        assert!(
            p.check("/xdr.v1.ThreatIntel/AddIndicators", &id("operator"))
                .is_ok()
        );
    }

    #[test]
    fn health_and_reflection_are_open_to_every_mesh_identity() {
        let p = policy();
        assert!(
            p.check("/grpc.health.v1.Health/Check", &id("collector"))
                .is_ok()
        );
        assert!(
            p.check(
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                &id("x")
            )
            .is_ok()
        );
    }

    #[test]
    fn rpcs_without_a_rule_are_denied() {
        let denied = policy()
            .check("/xdr.v1.Collector/Ingest", &id("operator"))
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
    }

    #[test]
    fn validation_rejects_rules_for_rpcs_not_served() {
        let served = [
            "xdr.v1.ThreatIntel/Lookup",
            "grpc.health.v1.Health/Check",
            "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ];
        assert_eq!(policy().validate(served), Ok(()));
        let typo = policy().allow_method("xdr.v1.ThreatIntel", "Lokup", &["operator"]);
        assert_eq!(
            typo.validate(served),
            Err(PolicyError::UnknownRpc("xdr.v1.ThreatIntel/Lokup".into()))
        );
        let unknown = policy().allow_service("xdr.v1.Nope", &["operator"]);
        assert_eq!(
            unknown.validate(served),
            Err(PolicyError::UnknownRpc("xdr.v1.Nope".into()))
        );
        let misspelt = policy().allow_method("xdr.v1.ThreatIntel", "Lookup", &["enrichmnet"]);
        assert_eq!(
            misspelt.validate(served),
            Err(PolicyError::UnknownIdentity("enrichmnet".into()))
        );
    }
}
