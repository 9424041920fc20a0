//! The codec of every `xdr.v1` service: prost's, except that a request which does not decode
//! (invalid UTF-8 in a string, a truncated field) is answered INVALID_ARGUMENT, naming the
//! field as prost does (`LookupObject.value: invalid string value`), instead of tonic's
//! INTERNAL: the caller sent it, the server is fine. Clients use it too (generated code has one
//! codec per service); for them a reply that does not decode reads as INVALID_ARGUMENT.

use std::marker::PhantomData;

use tonic::{
    Code, Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::ProstCodec;

pub struct XdrCodec<T, U> {
    prost: ProstCodec<T, U>,
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for XdrCodec<T, U> {
    fn default() -> Self {
        XdrCodec {
            prost: ProstCodec::default(),
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for XdrCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = XdrDecoder<<ProstCodec<T, U> as Codec>::Decoder>;

    fn encoder(&mut self) -> Self::Encoder {
        self.prost.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        XdrDecoder(self.prost.decoder())
    }
}

pub struct XdrDecoder<D>(D);

impl<D: Decoder<Error = Status>> Decoder for XdrDecoder<D> {
    type Item = D::Item;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        self.0.decode(src).map_err(|status| match status.code() {
            Code::Internal => Status::invalid_argument(status.message().to_owned()),
            _ => status,
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
