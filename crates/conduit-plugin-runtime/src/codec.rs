//! The gRPC codec of every generated service: prost messages, with the encode buffer grown
//! once per message.
//!
//! tonic's prost encoder writes a message into a buffer that starts at 8 KiB and grows as
//! fields are put into it, doubling and copying what was written so far each time. A source's
//! read answer is one message of up to a few MiB (a batch of records, each with a position
//! that covers every shard), so at hundreds of shards the regrowth copies and the page faults
//! of every new larger buffer took about a tenth of the plugin's CPU in a `perf` profile of
//! the shard count benchmark. Reserving the message's encoded length first makes it one
//! allocation and one copy of each field. Decoding is prost's, unchanged.

use std::marker::PhantomData;

use bytes::{BufMut, BytesMut};
use prost::Message;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::Status;
use tonic_prost::ProstDecoder;

/// [`Codec`] for prost messages whose encoder reserves each message's length up front
/// (named by `codec_path` in `build.rs`).
#[derive(Debug)]
pub struct ReservingProstCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ReservingProstCodec<T, U> {
    fn default() -> Self {
        ReservingProstCodec(PhantomData)
    }
}

impl<T, U> Codec for ReservingProstCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ReservingEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ReservingEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

/// Encodes a prost message after reserving its whole encoded length in the buffer.
#[derive(Debug)]
pub struct ReservingEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for ReservingEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        encode_reserved(&item, buf)
    }
}

/// A growable encode buffer.
trait Reserve: BufMut {
    fn reserve_more(&mut self, additional: usize);
}

impl Reserve for EncodeBuf<'_> {
    fn reserve_more(&mut self, additional: usize) {
        self.reserve(additional);
    }
}

impl Reserve for BytesMut {
    fn reserve_more(&mut self, additional: usize) {
        self.reserve(additional);
    }
}

fn encode_reserved<T: Message>(item: &T, buf: &mut impl Reserve) -> Result<(), Status> {
    buf.reserve_more(item.encoded_len());
    // prost fails only when the buffer cannot take the message, and these buffers grow
    // without limit.
    item.encode(buf)
        .map_err(|e| Status::internal(format!("encoding a message failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::connector::v2::source;
    use crate::proto::opencdc::v1::{Change, Data};
    use crate::record::Record;

    fn batch(records: usize, position_len: usize) -> source::run::Response {
        source::run::Response {
            records: (0..records)
                .map(|i| Record {
                    position: vec![i as u8; position_len],
                    operation: 1,
                    payload: Some(Change {
                        before: None,
                        after: Some(Data {
                            data: Some(crate::proto::opencdc::v1::data::Data::RawData(
                                bytes::Bytes::from(vec![7u8; 1024]),
                            )),
                        }),
                    }),
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn encodes_the_same_bytes_as_prost() {
        for (records, position_len) in [(0, 0), (1, 3), (500, 2_700)] {
            let message = batch(records, position_len);
            let mut buffer = BytesMut::new();
            encode_reserved(&message, &mut buffer).unwrap();
            assert_eq!(&buffer[..], &message.encode_to_vec()[..]);
        }
    }

    #[test]
    fn grows_the_buffer_once_per_message() {
        let message = batch(500, 2_700);
        let len = message.encoded_len();
        // tonic's encode buffer starts at 8 KiB.
        let mut buffer = BytesMut::with_capacity(8 * 1024);
        encode_reserved(&message, &mut buffer).unwrap();
        // Growth by doubling from 8 KiB would end at the next power of two above `len`.
        assert_eq!(buffer.len(), len);
        assert!(
            buffer.capacity() < len + 8 * 1024,
            "capacity {}",
            buffer.capacity()
        );
    }
}
