//! The playbook service: alerts and incidents raised from threat-intel matches, response
//! playbooks that act on UserGate UTM through its XML-RPC API, and the secrets they sign in
//! with. `grpc` is the only module that names tonic.

pub mod access;
pub mod alerts;
pub mod grpc;
pub mod metrics;
pub mod playbooks;
pub mod secrets;
pub mod usergate;
