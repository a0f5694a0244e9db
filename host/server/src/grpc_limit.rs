//! The gRPC receive limit, enforced as grpc-go enforces it for etcd: a request message whose
//! length prefix is over the limit fails with RESOURCE_EXHAUSTED, "grpc: received message
//! larger than max (N vs. M)", before any of it is buffered. (tonic's own limit answers
//! OUT_OF_RANGE, which etcd's clients do not expect; it stays behind this one as a backstop.)
//!
//! The request body is watched as it streams: each gRPC frame is a compressed flag, a
//! big-endian u32 length and the message; only the five header bytes are looked at.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use tonic::Status;

/// The gRPC frame header: a compressed flag and the message length.
const HEADER_LEN: usize = 5;

/// `body` with every message's declared length checked against `limit`.
pub fn limit(body: Body, limit: usize) -> Body {
    Body::new(Limited {
        inner: body,
        limit,
        header: [0; HEADER_LEN],
        header_seen: 0,
        message_left: 0,
        failed: false,
    })
}

struct Limited {
    inner: Body,
    limit: usize,
    /// The frame header being read, and how much of it has arrived.
    header: [u8; HEADER_LEN],
    header_seen: usize,
    /// Bytes of the current message still to pass.
    message_left: usize,
    failed: bool,
}

impl Limited {
    /// Walks `data` through the framing; the refusal if a message is declared too large.
    fn check(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.message_left > 0 {
                let n = self.message_left.min(data.len());
                self.message_left -= n;
                data = &data[n..];
                continue;
            }
            let n = (HEADER_LEN - self.header_seen).min(data.len());
            self.header[self.header_seen..self.header_seen + n].copy_from_slice(&data[..n]);
            self.header_seen += n;
            data = &data[n..];
            if self.header_seen == HEADER_LEN {
                self.header_seen = 0;
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]) as usize;
                if len > self.limit {
                    return Err(Status::resource_exhausted(format!(
                        "grpc: received message larger than max ({len} vs. {})",
                        self.limit
                    )));
                }
                self.message_left = len;
            }
        }
        Ok(())
    }
}

impl http_body::Body for Limited {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref()
            && let Err(status) = this.check(data)
        {
            this.failed = true;
            return Poll::Ready(Some(Err(axum::Error::new(status))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(limit: usize) -> Limited {
        Limited {
            inner: Body::empty(),
            limit,
            header: [0; HEADER_LEN],
            header_seen: 0,
            message_left: 0,
            failed: false,
        }
    }

    fn frame(len: usize) -> Vec<u8> {
        let mut f = vec![0];
        f.extend_from_slice(&(len as u32).to_be_bytes());
        f.resize(HEADER_LEN + len, 7);
        f
    }

    #[test]
    fn messages_within_the_limit_pass_however_they_are_cut() {
        let stream = [frame(10), frame(100), frame(0), frame(100)].concat();
        for cut in [1, 2, 3, 5, 7, 64, stream.len()] {
            let mut l = limited(100);
            for piece in stream.chunks(cut) {
                assert!(l.check(piece).is_ok(), "cut {cut}");
            }
        }
    }

    #[test]
    fn a_message_over_the_limit_is_refused_by_its_header() {
        let mut l = limited(100);
        assert!(l.check(&frame(50)).is_ok());
        // Only the header of the big one: refused before its bytes come.
        let big = frame(101);
        assert!(l.check(&big[..2]).is_ok());
        let refused = l.check(&big[2..HEADER_LEN]).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            refused.message(),
            "grpc: received message larger than max (101 vs. 100)"
        );
    }
}
