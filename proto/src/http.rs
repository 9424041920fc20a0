//! The REST bindings of `xdr.v1` RPCs: each method's `google.api.http` option (as
//! grpc-gateway reads it), from the embedded descriptor set. The gateway serves them and
//! describes them in its OpenAPI document; a new annotated RPC is on HTTP with no code.

use prost_reflect::MethodDescriptor;

use crate::json::pool;

/// `google.api.http`'s extension of `MethodOptions`.
const HTTP_OPTION: &str = "google.api.http";

/// One RPC bound to an HTTP verb and path template (`/v1/enrichment/rules/{id}`).
#[derive(Clone, Debug)]
pub struct HttpBinding {
    pub method: MethodDescriptor,
    /// `get`, `put`, `post`, `delete` or `patch`.
    pub verb: &'static str,
    pub path: String,
    /// The request field the body fills: `*` for the whole request, empty for no body.
    pub body: String,
}

impl HttpBinding {
    /// The names of the `{field}` variables of the path, in order.
    pub fn path_fields(&self) -> Vec<&str> {
        self.path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect()
    }
}

/// Every annotated RPC of `xdr.v1`, in the order the files declare them.
pub fn http_bindings() -> Vec<HttpBinding> {
    let Some(option) = pool().get_extension_by_name(HTTP_OPTION) else {
        return Vec::new();
    };
    let mut bindings = Vec::new();
    for service in pool().services() {
        for method in service.methods() {
            let options = method.options();
            if !options.has_extension(&option) {
                continue;
            }
            let rule = options.get_extension(&option);
            let Some(rule) = rule.as_message() else {
                continue;
            };
            let text = |name: &str| {
                rule.get_field_by_name(name)
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            };
            for verb in ["get", "put", "post", "delete", "patch"] {
                if rule.has_field_by_name(verb) {
                    bindings.push(HttpBinding {
                        method: method.clone(),
                        verb,
                        path: text(verb),
                        body: text("body"),
                    });
                }
            }
        }
    }
    bindings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotated_rpcs_are_read_from_the_descriptors() {
        let bindings = http_bindings();
        let search = bindings
            .iter()
            .find(|b| b.method.full_name() == "xdr.v1.Collector.SearchEvents")
            .expect("SearchEvents is bound");
        assert_eq!((search.verb, search.path.as_str()), ("get", "/v1/events"));
        assert_eq!(search.body, "");
        let update = bindings
            .iter()
            .find(|b| b.method.full_name() == "xdr.v1.Enrichment.UpdateRule")
            .unwrap();
        assert_eq!(update.verb, "put");
        assert_eq!(update.path_fields(), ["id"]);
        assert_eq!(update.body, "*");
        // Streams from the client have no REST form.
        assert!(bindings.iter().all(|b| !b.method.is_client_streaming()));
    }
}
