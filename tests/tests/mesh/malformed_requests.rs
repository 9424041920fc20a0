//! Requests that do not even decode (a string field holding invalid UTF-8, which grpcurl and
//! other well-behaved clients cannot send) are INVALID_ARGUMENT naming the field, and the
//! service stays up.

use xdr_tests::{Cert, Grpcurl, ServiceProcess, TestPki, client};

/// `xdr.v1.LookupObject` with its string `value` declared as bytes, to send what a string
/// may not hold.
#[derive(Clone, PartialEq, prost::Message)]
struct RawObject {
    #[prost(int32, tag = "1")]
    kind: i32,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawLookupRequest {
    #[prost(message, repeated, tag = "1")]
    objects: Vec<RawObject>,
}

#[test]
fn invalid_utf8_in_a_string_is_invalid_argument_naming_the_field() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("threatintel", &pki);
    let addr = server.listening_addr();
    let runtime = client::runtime();
    let status = runtime.block_on(async {
        let channel = client::channel(&pki, "operator", &server, "threatintel").await;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let request = RawLookupRequest {
            objects: vec![RawObject {
                kind: 0,
                value: b"http://\xff\xfe.example/".to_vec(),
            }],
        };
        let codec =
            tonic_prost::ProstCodec::<RawLookupRequest, xdr_proto::pb::LookupReply>::default();
        let path = http::uri::PathAndQuery::from_static("/xdr.v1.ThreatIntel/Lookup");
        grpc.unary(tonic::Request::new(request), path, codec)
            .await
            .unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("LookupObject.value"),
        "{}",
        status.message()
    );

    let served =
        Grpcurl::new(&pki, Cert::Named("operator")).data(r#"{"objects":[{"value":"192.0.2.1"}]}"#);
    assert!(
        served.call(addr, &["xdr.v1.ThreatIntel/Lookup"]).success,
        "the service stays up"
    );
}
