//! The :authority repair layer reading whatever a client sends: it must never panic, never
//! hand on more than it read plus what it re-encoded, and end (with data or an error) once the
//! client's bytes run out. The first byte picks how the bytes are cut into reads.
#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll};

use conclave_authority::AuthorityFix;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// A client that delivers `data` in pieces of `piece` bytes.
struct Pieces {
    data: Vec<u8>,
    pos: usize,
    piece: usize,
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self
            .piece
            .min(self.data.len() - self.pos)
            .min(buf.remaining());
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&cut, data)) = input.split_first() else {
        return;
    };
    let client = Pieces {
        data: data.to_vec(),
        pos: 0,
        piece: usize::from(cut).max(1),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let mut fix = AuthorityFix::new(client);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match fix.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
            // Re-encoding may grow a block, never without bound.
            assert!(out.len() <= data.len() * 4 + 64 * 1024);
        }
    });
});
