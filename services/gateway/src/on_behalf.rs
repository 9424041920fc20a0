//! A call to a service on a person's behalf: the person in `x-xdr-*` metadata (the services
//! apply the role table and tenancy to it), the request's trace context, and a deadline.
//! Everything the gateway calls for a person — the JSON routes and the console — goes
//! through here.

use std::time::Duration;

use tonic::metadata::MetadataValue;
use xdr_mesh::caller::{ROLE_HEADER, TENANT_HEADER, USER_HEADER};

use crate::{
    people::Person,
    problem::Problem,
    trace_context::{TRACEPARENT, TraceContext},
};

/// `message` as a request made for `person` within `timeout`, in the trace `trace`.
pub fn request<T>(
    person: &Person,
    trace: TraceContext,
    timeout: Duration,
    message: T,
) -> Result<tonic::Request<T>, Problem> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    let metadata = request.metadata_mut();
    for (name, value) in [
        (USER_HEADER, person.user.as_str()),
        (TENANT_HEADER, person.tenant.as_str()),
        (ROLE_HEADER, person.role.name()),
    ] {
        let value = MetadataValue::try_from(value)
            .map_err(|_| Problem::bad_request(format!("{name}: not visible ASCII")))?;
        metadata.insert(name, value);
    }
    let trace = MetadataValue::try_from(trace.to_string()).expect("hex is ASCII");
    metadata.insert(TRACEPARENT, trace);
    Ok(request)
}
