//! The UserGate UTM API v7 client: XML-RPC over HTTP(S) (`transport`), a signed-in session
//! that signs in again once when the session expired (`session`), the method names in one
//! overridable table (`methods`), and the list, rule and user operations playbooks use
//! (`operations`).

mod error;
mod methods;
mod operations;
mod session;
mod transport;

pub use error::{CallError, FAULT_ITEM_PRESENT, FAULT_LIST_FROM_URL};
pub use methods::{Call, MethodTable};
pub use operations::{ActiveUser, ApiId, ListKind};
pub use session::{Credentials, Session};
pub use transport::Endpoint;
