//! A blocking (`std::net`) connection to one broker: one request at a time, answered in order.
//! Thin over [`crate::wire`]; the caller connects the socket and sets its timeouts
//! ([`Connection::stream`]), and owns retries and routing.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use bytes::BytesMut;

use crate::wire::{self, CorrelationIds, Error, Request};

/// A connection to one broker.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    client_id: String,
    max_frame: usize,
    correlation_ids: CorrelationIds,
    /// The answer buffer, reused when the previous answer has been dropped.
    buffer: BytesMut,
}

impl Connection {
    /// A connection over `stream`. Requests carry `client_id`; responses over `max_frame` bytes
    /// are refused.
    pub fn new(stream: TcpStream, client_id: &str, max_frame: usize) -> Connection {
        Connection {
            stream,
            client_id: client_id.to_owned(),
            max_frame,
            correlation_ids: CorrelationIds::default(),
            buffer: BytesMut::new(),
        }
    }

    /// The socket, to set its timeouts.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends `request` at `version` and reads its response. After an error the connection's
    /// state is unknown: drop it.
    ///
    /// # Errors
    /// [`Error::Io`] when the socket fails or times out, [`Error::Invalid`] for a bad answer.
    pub fn call<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, Error> {
        let correlation_id = self.correlation_ids.next_id();
        let frame = wire::encode_request(request, version, correlation_id, Some(&self.client_id))?;
        self.stream.write_all(&frame)?;
        let mut prefix = [0; 4];
        self.stream.read_exact(&mut prefix)?;
        let size = wire::response_size(R::KEY, prefix, self.max_frame)?;
        self.buffer.clear();
        // Reclaims the previous answer's allocation once nothing refers to it.
        self.buffer.reserve(size);
        self.buffer.resize(size, 0);
        self.stream.read_exact(&mut self.buffer[..])?;
        wire::decode_response::<R>(self.buffer.split().freeze(), version, correlation_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::{METADATA_V12, all_topics, response_frame};
    use std::net::TcpListener;

    /// A fake broker answering each request on one connection with `reply(correlation_id)`.
    fn fake_broker(reply: impl Fn(i32) -> Vec<u8> + Send + 'static) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            loop {
                let mut size = [0; 4];
                if stream.read_exact(&mut size).is_err() {
                    return;
                }
                let mut body = vec![0; usize::try_from(i32::from_be_bytes(size)).expect("size")];
                stream.read_exact(&mut body).expect("body");
                let mut body = bytes::Bytes::from(body);
                let header = kafka_protocol::protocol::decode_request_header_from_buffer(&mut body)
                    .expect("header");
                let _ = stream.write_all(&reply(header.correlation_id));
            }
        });
        addr
    }

    #[test]
    fn calls_in_turn_on_one_connection() {
        let addr = fake_broker(|id| response_frame(id, METADATA_V12));
        let mut connection =
            Connection::new(TcpStream::connect(&addr).expect("connect"), "test", 1024);
        for _ in 0..3 {
            let response = connection.call(&all_topics(), 12).expect("call");
            assert_eq!(response.controller_id.0, 7);
        }
    }

    #[test]
    fn an_oversized_frame_is_refused() {
        let addr = fake_broker(|id| response_frame(id, METADATA_V12));
        let mut connection =
            Connection::new(TcpStream::connect(&addr).expect("connect"), "test", 4);
        let error = connection.call(&all_topics(), 12).expect_err("too large");
        assert!(!error.is_io(), "{error}");
    }
}
