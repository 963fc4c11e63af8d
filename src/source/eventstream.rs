//! The AWS event stream framing (`application/vnd.amazon.eventstream`) that carries
//! SubscribeToShard's events.
//!
//! A message is: total length (u32), headers length (u32), CRC32 of those 8 bytes, the
//! headers, the payload, and the CRC32 of everything before it; all integers big-endian.
//! A header is a name (u8 length + bytes), a type byte and a typed value. Only the string
//! headers that classify a message (`:message-type`, `:event-type`, `:exception-type`,
//! `:error-code`, `:error-message`) are kept; values of other types are skipped.

use bytes::{Buf, Bytes, BytesMut};

const PRELUDE_LEN: usize = 12;
const CRC_LEN: usize = 4;
/// The service's limit is 16 MiB per message; anything bigger is a corrupt length.
const MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024 + 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("event stream message of {0} bytes is not a valid length")]
    BadLength(usize),
    #[error("event stream message prelude checksum mismatch")]
    PreludeChecksum,
    #[error("event stream message checksum mismatch")]
    MessageChecksum,
    #[error("event stream message headers are malformed: {0}")]
    BadHeaders(&'static str),
}

/// One decoded message: its classifying headers and its payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub message_type: Option<String>,
    pub event_type: Option<String>,
    pub exception_type: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub payload: Bytes,
}

/// Collects response body chunks and hands out whole messages.
#[derive(Debug, Default)]
pub struct MessageBuffer {
    pending: BytesMut,
}

impl MessageBuffer {
    pub fn push(&mut self, chunk: &[u8]) {
        self.pending.extend_from_slice(chunk);
    }

    /// Bytes received that do not make a whole message yet.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The next whole message, `None` while more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        if self.pending.len() < PRELUDE_LEN {
            return Ok(None);
        }
        let total = be_u32(&self.pending[0..4]) as usize;
        let headers_len = be_u32(&self.pending[4..8]) as usize;
        if !(PRELUDE_LEN + CRC_LEN..=MAX_MESSAGE_LEN).contains(&total)
            || headers_len > total - PRELUDE_LEN - CRC_LEN
        {
            return Err(FrameError::BadLength(total));
        }
        if crc32fast::hash(&self.pending[0..8]) != be_u32(&self.pending[8..12]) {
            return Err(FrameError::PreludeChecksum);
        }
        if self.pending.len() < total {
            return Ok(None);
        }
        let frame = self.pending.split_to(total).freeze();
        if self.pending.is_empty() {
            // Let the frame's allocation go with the frame: a reader waiting for room
            // (slow Conduit, many shards) must not also hold an event-sized buffer.
            self.pending = BytesMut::new();
        }
        if crc32fast::hash(&frame[..total - CRC_LEN]) != be_u32(&frame[total - CRC_LEN..]) {
            return Err(FrameError::MessageChecksum);
        }
        let mut message = Message::default();
        read_headers(&frame[PRELUDE_LEN..PRELUDE_LEN + headers_len], &mut message)?;
        message.payload = frame.slice(PRELUDE_LEN + headers_len..total - CRC_LEN);
        Ok(Some(message))
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes.try_into().expect("four bytes"))
}

fn read_headers(mut headers: &[u8], message: &mut Message) -> Result<(), FrameError> {
    let truncated = FrameError::BadHeaders("truncated");
    while headers.has_remaining() {
        let name_len = usize::from(headers.try_get_u8().map_err(|_| truncated.clone())?);
        if headers.remaining() < name_len + 1 {
            return Err(truncated);
        }
        let name = &headers[..name_len];
        headers.advance(name_len);
        let value_type = headers.get_u8();
        let fixed = match value_type {
            0 | 1 => Some(0), // booleans: the type is the value
            2 => Some(1),
            3 => Some(2),
            4 => Some(4),
            5 | 8 => Some(8),
            9 => Some(16),
            6 | 7 => None,
            _ => return Err(FrameError::BadHeaders("unknown header value type")),
        };
        if let Some(len) = fixed {
            if headers.remaining() < len {
                return Err(truncated);
            }
            headers.advance(len);
            continue;
        }
        let len = usize::from(headers.try_get_u16().map_err(|_| truncated.clone())?);
        if headers.remaining() < len {
            return Err(truncated);
        }
        let value = &headers[..len];
        headers.advance(len);
        if value_type != 7 {
            continue;
        }
        let slot = match name {
            b":message-type" => &mut message.message_type,
            b":event-type" => &mut message.event_type,
            b":exception-type" => &mut message.exception_type,
            b":error-code" => &mut message.error_code,
            b":error-message" => &mut message.error_message,
            _ => continue,
        };
        let value = std::str::from_utf8(value)
            .map_err(|_| FrameError::BadHeaders("a string header is not UTF-8"))?;
        *slot = Some(value.to_string());
    }
    Ok(())
}

/// Writes one message with string headers, as the service sends them (for tests).
pub fn encode_message(string_headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut headers = Vec::new();
    for (name, value) in string_headers {
        headers.push(u8::try_from(name.len()).expect("header name fits a u8 length"));
        headers.extend_from_slice(name.as_bytes());
        headers.push(7);
        headers.extend_from_slice(
            &u16::try_from(value.len())
                .expect("header value fits a u16 length")
                .to_be_bytes(),
        );
        headers.extend_from_slice(value.as_bytes());
    }
    let total = PRELUDE_LEN + headers.len() + payload.len() + CRC_LEN;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&headers);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(payload: &[u8]) -> Vec<u8> {
        encode_message(
            &[
                (":message-type", "event"),
                (":event-type", "SubscribeToShardEvent"),
                (":content-type", "application/json"),
            ],
            payload,
        )
    }

    #[test]
    fn messages_split_anywhere_come_out_whole_and_in_order() {
        let mut wire = event(br#"{"a":1}"#);
        wire.extend(encode_message(
            &[
                (":message-type", "exception"),
                (":exception-type", "ResourceInUseException"),
            ],
            br#"{"message":"busy"}"#,
        ));
        for cut in 0..wire.len() {
            let mut buffer = MessageBuffer::default();
            let mut out = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                buffer.push(part);
                while let Some(message) = buffer.next_message().unwrap() {
                    out.push(message);
                }
            }
            assert_eq!(out.len(), 2, "cut at {cut}");
            assert_eq!(out[0].message_type.as_deref(), Some("event"));
            assert_eq!(out[0].event_type.as_deref(), Some("SubscribeToShardEvent"));
            assert_eq!(&out[0].payload[..], br#"{"a":1}"#);
            assert_eq!(
                out[1].exception_type.as_deref(),
                Some("ResourceInUseException")
            );
            assert_eq!(&out[1].payload[..], br#"{"message":"busy"}"#);
            assert_eq!(buffer.pending_len(), 0);
        }
    }

    #[test]
    fn no_buffer_is_kept_once_the_messages_are_out() {
        // A reader waiting for room must not hold an event-sized allocation per shard.
        let wire = event(&[b'x'; 64 * 1024]);
        let mut buffer = MessageBuffer::default();
        // In pieces, as a connection delivers it: the buffer grows past the message's size.
        for piece in wire.chunks(1000) {
            buffer.push(piece);
        }
        let message = buffer.next_message().unwrap().unwrap();
        assert_eq!(message.payload.len(), 64 * 1024);
        assert_eq!(buffer.pending.capacity(), 0);
    }

    #[test]
    fn corruption_is_detected() {
        let wire = event(b"{}");
        let mut bad_prelude = wire.clone();
        bad_prelude[9] ^= 1;
        let mut buffer = MessageBuffer::default();
        buffer.push(&bad_prelude);
        assert_eq!(buffer.next_message(), Err(FrameError::PreludeChecksum));

        let mut bad_payload = wire.clone();
        let at = bad_payload.len() - 5;
        bad_payload[at] ^= 1;
        let mut buffer = MessageBuffer::default();
        buffer.push(&bad_payload);
        assert_eq!(buffer.next_message(), Err(FrameError::MessageChecksum));

        let mut buffer = MessageBuffer::default();
        buffer.push(&[0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(buffer.next_message(), Err(FrameError::BadLength(3)));
    }

    #[test]
    fn typed_headers_are_skipped_and_unknown_types_rejected() {
        // A bool, an int, a byte array and a timestamp before the string header.
        let mut headers = Vec::new();
        headers.extend([2, b'b', b'1', 0]);
        headers.extend([1, b'i', 4, 0, 0, 0, 7]);
        headers.extend([1, b'y', 6, 0, 2, 0xFF, 0xFE]);
        headers.extend([1, b't', 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        headers.extend([13]);
        headers.extend(b":message-type");
        headers.extend([7, 0, 5]);
        headers.extend(b"event");
        let mut message = Message::default();
        read_headers(&headers, &mut message).unwrap();
        assert_eq!(message.message_type.as_deref(), Some("event"));

        let mut message = Message::default();
        assert!(read_headers(&[1, b'x', 42], &mut message).is_err());
        assert!(read_headers(&[1, b'x', 7, 0, 9, b'a'], &mut message).is_err());
    }

    #[test]
    fn a_frame_the_aws_sdk_writes_decodes() {
        // Written by aws-smithy-eventstream for the same headers and payload: the framing
        // is byte-for-byte the one the SDK (and the service) speak.
        use aws_smithy_types::event_stream::{Header, HeaderValue, Message as SdkMessage};
        let sdk = SdkMessage::new(&b"{\"x\":true}"[..])
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            ))
            .add_header(Header::new(":flag", HeaderValue::Bool(true)))
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String("initial-response".into()),
            ));
        let mut wire = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(&sdk, &mut wire).unwrap();
        let mut buffer = MessageBuffer::default();
        buffer.push(&wire);
        let message = buffer.next_message().unwrap().unwrap();
        assert_eq!(message.event_type.as_deref(), Some("initial-response"));
        assert_eq!(&message.payload[..], b"{\"x\":true}");
    }
}
