//! The one proto3 JSON mapping of every `xdr.v1` message: dynamic messages over the embedded
//! descriptor set, so the gateway's HTTP JSON and every tool agree with each other and with
//! grpcurl (lowerCamelCase names, enum names, 64-bit integers as strings, bytes as base64,
//! default values left out; unknown fields refused by name).

use std::sync::LazyLock;

use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, MethodDescriptor,
    SerializeOptions,
};

use crate::FILE_DESCRIPTOR_SET;

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(FILE_DESCRIPTOR_SET)
        .expect("the descriptor set was encoded by this crate's build script")
});

#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("no message type `{0}` in xdr.v1")]
    UnknownMessage(String),
    #[error("{0}")]
    Invalid(String),
}

/// The descriptors of every `xdr.v1` file.
pub fn pool() -> &'static DescriptorPool {
    &POOL
}

/// The message type `full_name` (`xdr.v1.LookupRequest`).
pub fn message(full_name: &str) -> Result<MessageDescriptor, JsonError> {
    POOL.get_message_by_name(full_name)
        .ok_or_else(|| JsonError::UnknownMessage(full_name.to_owned()))
}

/// The RPC at `path` (`xdr.v1.ThreatIntel/Lookup`), if `xdr.v1` declares it.
pub fn method(path: &str) -> Option<MethodDescriptor> {
    let (service, method) = path.trim_start_matches('/').split_once('/')?;
    POOL.get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == method)
}

/// `json` as a message of type `descriptor`, encoded in protobuf.
pub fn json_to_protobuf(descriptor: MessageDescriptor, json: &str) -> Result<Vec<u8>, JsonError> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let message = DynamicMessage::deserialize_with_options(
        descriptor,
        &mut deserializer,
        &DeserializeOptions::new(),
    )
    .map_err(|e| JsonError::Invalid(e.to_string()))?;
    deserializer
        .end()
        .map_err(|e| JsonError::Invalid(e.to_string()))?;
    Ok(message.encode_to_vec())
}

/// Protobuf `bytes` of type `descriptor`, in JSON.
pub fn protobuf_to_json(descriptor: MessageDescriptor, bytes: &[u8]) -> Result<String, JsonError> {
    let message =
        DynamicMessage::decode(descriptor, bytes).map_err(|e| JsonError::Invalid(e.to_string()))?;
    let mut out = serde_json::Serializer::new(Vec::new());
    message
        .serialize_with_options(&mut out, &SerializeOptions::new())
        .map_err(|e| JsonError::Invalid(e.to_string()))?;
    Ok(String::from_utf8(out.into_inner()).expect("serde_json writes UTF-8"))
}

/// A gRPC codec for messages already encoded: a JSON client sends what [`json_to_protobuf`]
/// made and reads the bytes back with [`protobuf_to_json`], for any RPC of `xdr.v1`.
#[derive(Clone, Copy, Debug, Default)]
pub struct EncodedCodec;

impl tonic::codec::Codec for EncodedCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = EncodedCodec;
    type Decoder = EncodedCodec;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        EncodedCodec
    }
}

impl tonic::codec::Encoder for EncodedCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for EncodedCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// A generated message `M` of type `full_name`, from JSON.
pub fn from_json<M: Message + Default>(full_name: &str, json: &str) -> Result<M, JsonError> {
    let bytes = json_to_protobuf(message(full_name)?, json)?;
    M::decode(bytes.as_slice()).map_err(|e| JsonError::Invalid(e.to_string()))
}

/// A generated message of type `full_name`, in JSON.
pub fn to_json(full_name: &str, message_value: &impl Message) -> Result<String, JsonError> {
    protobuf_to_json(message(full_name)?, &message_value.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{IndicatorType, LookupObject, LookupRequest, StatsReply};

    #[test]
    fn messages_map_as_proto3_json_does() {
        let request = LookupRequest {
            objects: vec![LookupObject {
                r#type: IndicatorType::Url as i32,
                value: "http://fakess123.nu".into(),
            }],
        };
        let json = to_json("xdr.v1.LookupRequest", &request).unwrap();
        assert_eq!(
            json,
            r#"{"objects":[{"type":"INDICATOR_TYPE_URL","value":"http://fakess123.nu"}]}"#
        );
        let back: LookupRequest = from_json("xdr.v1.LookupRequest", &json).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn sixty_four_bit_integers_are_strings_and_defaults_are_left_out() {
        let stats = StatsReply {
            lookups: 5,
            ..Default::default()
        };
        assert_eq!(
            to_json("xdr.v1.StatsReply", &stats).unwrap(),
            r#"{"lookups":"5"}"#
        );
    }

    #[test]
    fn unknown_fields_and_trailing_text_are_refused_by_name() {
        let unknown = from_json::<LookupRequest>("xdr.v1.LookupRequest", r#"{"objcts": []}"#);
        assert!(unknown.unwrap_err().to_string().contains("objcts"));
        let trailing = from_json::<LookupRequest>("xdr.v1.LookupRequest", "{} {}");
        assert!(trailing.is_err());
        assert!(matches!(
            message("xdr.v1.Nope"),
            Err(JsonError::UnknownMessage(_))
        ));
    }

    #[test]
    fn methods_are_found_by_path() {
        let lookup = method("/xdr.v1.ThreatIntel/Lookup").unwrap();
        assert_eq!(lookup.input().full_name(), "xdr.v1.LookupRequest");
        assert!(method("xdr.v1.ThreatIntel/Nope").is_none());
    }
}
