//! A connection wrapper that repairs the HTTP/2 `:authority` etcdctl 3.4 sends. grpc-go 1.26
//! dials one endpoint as `passthrough:///http://host:port` and puts `http://host:port` in
//! `:authority`; etcd (Go) accepts it, but the h2 crate resets the stream as malformed, so
//! `etcdctl --endpoints=http://... endpoint status` failed against us.
//!
//! The fix lives below h2, on the bytes: on an HTTP/2 connection the client's header blocks are
//! decoded with a connection-scoped HPACK decoder, a malformed `:authority` is cut down to its
//! host:port, and every block is re-encoded with literals that never touch the dynamic table,
//! so h2's decoder state cannot drift from ours whatever the client's encoder indexed. All other
//! frames, HTTP/1.1 connections and everything the server writes go through unchanged.
//!
//! Why still a layer of our own (reconsidered for the security review): h2 parses
//! `:authority` with `http::uri::Authority`, which refuses a scheme, and neither h2, hyper nor
//! tonic has a setting to accept or rewrite it; the alternatives are a fork of h2 or refusing
//! etcdctl 3.4, which Debian ships. So it stays, held to h2's own limits (16 KiB frames, a
//! bounded header block, buffers that grow only as bytes arrive, a deadline for a stalled
//! frame) and fuzzed (`host/fuzz`, target `authority`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::uri::Authority;
use loona_hpack::Decoder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::debug;

/// What an HTTP/2 client sends first (RFC 9113 section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The HEADERS frame's stream dependency and weight.
const PRIORITY_LEN: usize = 5;
/// h2's SETTINGS_MAX_FRAME_SIZE: the default, which the server never raises, so every frame we
/// write must fit in it.
const MAX_FRAME_SIZE: usize = 16_384;
/// The HPACK table size the client's encoder may use: h2's SETTINGS_HEADER_TABLE_SIZE, which
/// the server leaves at the default. A larger size update is an error, as it is in h2.
const HEADER_TABLE_SIZE: usize = 4096;
/// The most we buffer of one header block, encoded (all its frames) and decoded (in HPACK
/// size: name + value + 32 per field). h2 refuses lists over 16 KiB anyway (hyper's default
/// SETTINGS_MAX_HEADER_LIST_SIZE); past this bound the client is hostile (an HPACK bomb,
/// endless CONTINUATION) and the connection fails. A single header frame is bounded by
/// [`MAX_FRAME_SIZE`], as h2 bounds every frame. Other frames are streamed through and never
/// buffered, so their length needs no bound.
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// What we read into our own buffer at a time while a header frame is incomplete: the buffer
/// grows with the bytes that arrive, never with the length a frame header claims.
const READ_CHUNK: usize = 8 * 1024;
/// How long a client may leave a header frame or block unfinished before its connection is
/// closed: a client that claims a frame and sends it a byte a minute holds memory otherwise.
const HEADER_STALL: std::time::Duration = std::time::Duration::from_secs(10);

/// One connection: reads are rewritten as the module docs say, writes pass straight through.
pub struct AuthorityFix<S> {
    inner: S,
    mode: Mode,
    /// Bytes read from the client and not yet handed on. Only the start of a connection and
    /// incomplete header frames are buffered here; everything else is read straight into the
    /// caller's buffer.
    input: Buffer,
    /// Bytes of a frame that passes through unchanged (its header and payload) still to hand
    /// on. In HTTP/2 mode, whenever it is zero, `input` starts at a frame boundary.
    skip: usize,
    /// Runs while a header frame or block is unfinished; the connection fails when it ends.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

enum Mode {
    /// Not yet known whether the client speaks HTTP/2: waiting for the preface.
    Detect,
    /// Not HTTP/2: every byte passes through.
    Passthrough,
    Http2(Box<Http2>),
    /// The client broke the protocol; the connection is over.
    Failed(io::ErrorKind, String),
}

/// The HTTP/2 side of a connection.
struct Http2 {
    decoder: Decoder<'static>,
    /// A header block whose END_HEADERS has not been seen yet.
    block: Option<Block>,
    /// Re-encoded frames not yet handed on.
    out: Buffer,
    /// Whether this connection's header blocks are rewritten. A client sends one authority
    /// for the whole connection (grpc-go does), so the first header block decides: when its
    /// authority is fine, it goes on as it came and the connection turns to passthrough, so
    /// ordinary clients pay for one decode; otherwise every block is re-encoded from then on.
    rewriting: bool,
    /// The first block was fine: once `out` is drained, everything passes through.
    settled: bool,
    /// The raw bytes of a HEADERS frame on its way into a new `Block`.
    pending_raw: Vec<u8>,
}

struct Block {
    /// The block's frames as the client sent them, while the connection is undecided.
    raw: Vec<u8>,
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; PRIORITY_LEN]>,
    fragment: Vec<u8>,
}

#[derive(Clone, Copy)]
struct FrameHeader {
    len: usize,
    kind: u8,
    flags: u8,
    stream_id: u32,
}

impl FrameHeader {
    /// Parses the first nine bytes; `None` if there are fewer.
    fn parse(bytes: &[u8]) -> Option<FrameHeader> {
        let b: &[u8; FRAME_HEADER_LEN] = bytes.get(..FRAME_HEADER_LEN)?.try_into().ok()?;
        Some(FrameHeader {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream_id: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        })
    }

    fn write(self, out: &mut Vec<u8>) {
        let len = self.len.to_be_bytes();
        out.extend_from_slice(&len[len.len() - 3..]);
        out.push(self.kind);
        out.push(self.flags);
        out.extend_from_slice(&self.stream_id.to_be_bytes());
    }
}

/// A byte queue read from the front. Consumed bytes are dropped lazily and the vector keeps
/// its initialised length, so neither taking a prefix nor reading into it again costs a move
/// or a fill of the rest.
#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    start: usize,
    end: usize,
}

/// A buffer that grew this much for one big header block gives its memory back once empty.
const KEEP_CAPACITY: usize = 2 * READ_CHUNK;

impl Buffer {
    fn data(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.is_empty() {
            self.start = 0;
            self.end = 0;
            if self.bytes.capacity() > KEEP_CAPACITY {
                self.bytes = Vec::new();
            }
        }
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Appends through `write`, which gets the vector holding exactly the queued bytes.
    fn append(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.compact();
        self.bytes.truncate(self.end);
        write(&mut self.bytes);
        self.end = self.bytes.len();
    }

    /// Room for at least `want` more bytes, to be committed with `filled`.
    fn space(&mut self, want: usize) -> &mut [u8] {
        self.compact();
        if self.bytes.len() < self.end + want {
            self.bytes.resize(self.end + want, 0);
        }
        &mut self.bytes[self.end..]
    }

    fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.bytes.len());
    }

    /// Moves as much as fits into `buf`.
    fn drain_into(&mut self, buf: &mut ReadBuf<'_>) {
        let n = self.data().len().min(buf.remaining());
        buf.put_slice(&self.data()[..n]);
        self.consume(n);
    }
}

fn protocol_error(msg: impl Into<String>) -> (io::ErrorKind, String) {
    (io::ErrorKind::InvalidData, msg.into())
}

/// Whether an unfinished header frame or block has waited [`HEADER_STALL`]; starts the clock
/// the first time it is asked, and registers the waker for its end.
fn stalled(stall: &mut Option<Pin<Box<tokio::time::Sleep>>>, cx: &mut Context<'_>) -> bool {
    stall
        .get_or_insert_with(|| Box::pin(tokio::time::sleep(HEADER_STALL)))
        .as_mut()
        .poll(cx)
        .is_ready()
}

fn stall_error() -> (io::ErrorKind, String) {
    (
        io::ErrorKind::TimedOut,
        format!("a header frame left unfinished for {HEADER_STALL:?}"),
    )
}

impl<S> AuthorityFix<S> {
    /// The connection underneath, before any byte was read through the fix.
    pub fn into_inner(self) -> S {
        self.inner
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn new(inner: S) -> Self {
        AuthorityFix {
            inner,
            mode: Mode::Detect,
            input: Buffer::default(),
            skip: 0,
            stall: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AuthorityFix<S> {
    /// Reads what has arrived, up to a chunk, into `input`; the number read, 0 at end of
    /// stream. `want` (what the frame at the front still lacks, as its header claims) only
    /// caps the read: the buffer never grows by more than arrived.
    fn fill_input(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        let mut read = ReadBuf::new(self.input.space(want.clamp(1, READ_CHUNK)));
        let polled = Pin::new(&mut self.inner).poll_read(cx, &mut read);
        let n = read.filled().len();
        self.input.filled(n);
        polled.map_ok(|()| n)
    }

    fn fail(&mut self, (kind, msg): (io::ErrorKind, String)) -> Poll<io::Result<()>> {
        debug!(error = %msg, "closing an HTTP/2 connection");
        self.mode = Mode::Failed(kind, msg.clone());
        Poll::Ready(Err(io::Error::new(kind, msg)))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            match &mut this.mode {
                Mode::Failed(kind, msg) => {
                    return Poll::Ready(Err(io::Error::new(*kind, msg.clone())));
                }
                Mode::Passthrough => {
                    if !this.input.is_empty() {
                        this.input.drain_into(buf);
                        if this.input.is_empty() {
                            // Never needed again on this connection.
                            this.input = Buffer::default();
                        }
                        return Poll::Ready(Ok(()));
                    }
                    return Pin::new(&mut this.inner).poll_read(cx, buf);
                }
                Mode::Detect => {
                    let seen = this.input.data();
                    let n = seen.len().min(PREFACE.len());
                    if seen[..n] != PREFACE[..n] {
                        this.mode = Mode::Passthrough;
                    } else if n == PREFACE.len() {
                        this.mode = Mode::Http2(Box::new(Http2::new()));
                        this.skip = PREFACE.len();
                    } else if ready!(this.fill_input(cx, PREFACE.len() - n))? == 0 {
                        // Too short for HTTP/2: whatever it is, the server judges it.
                        this.mode = Mode::Passthrough;
                    }
                }
                Mode::Http2(h2) => {
                    if !h2.out.is_empty() {
                        h2.out.drain_into(buf);
                        return Poll::Ready(Ok(()));
                    }
                    if h2.settled {
                        // `input` holds whatever followed the first block; passthrough hands it on.
                        this.mode = Mode::Passthrough;
                        continue;
                    }
                    if !this.input.is_empty() {
                        if this.skip > 0 {
                            let n = this.skip.min(this.input.data().len()).min(buf.remaining());
                            buf.put_slice(&this.input.data()[..n]);
                            this.input.consume(n);
                            this.skip -= n;
                            return Poll::Ready(Ok(()));
                        }
                        let want = match h2.step(&mut this.input, &mut this.skip) {
                            Ok(Step::Progress) => {
                                // A header frame was taken whole: the clock starts again
                                // for the next one, if the block goes on.
                                this.stall = None;
                                continue;
                            }
                            Ok(Step::Need(want)) => want,
                            Err(e) => return this.fail(e),
                        };
                        let filled = match this.fill_input(cx, want) {
                            Poll::Ready(filled) => filled?,
                            Poll::Pending if stalled(&mut this.stall, cx) => {
                                return this.fail(stall_error());
                            }
                            Poll::Pending => return Poll::Pending,
                        };
                        if filled == 0 {
                            return this.fail((
                                io::ErrorKind::UnexpectedEof,
                                "the client closed the connection within an HTTP/2 frame".into(),
                            ));
                        }
                        continue;
                    }
                    // Nothing buffered: read straight into the caller's buffer, then hold back
                    // whatever must not pass as it is.
                    let start = buf.filled().len();
                    if Pin::new(&mut this.inner).poll_read(cx, buf)?.is_pending() {
                        // Between the frames of a header block the clock runs too.
                        if h2.block.is_some() && stalled(&mut this.stall, cx) {
                            return this.fail(stall_error());
                        }
                        return Poll::Pending;
                    }
                    let end = buf.filled().len();
                    if end == start {
                        if h2.block.is_some() {
                            return this.fail((
                                io::ErrorKind::UnexpectedEof,
                                "the client closed the connection within a header block".into(),
                            ));
                        }
                        return Poll::Ready(Ok(()));
                    }
                    let pass = start + h2.passable(&buf.filled()[start..end], &mut this.skip);
                    if pass < end {
                        let held = &buf.filled()[pass..end];
                        this.input.append(|bytes| bytes.extend_from_slice(held));
                        buf.set_filled(pass);
                    }
                    if pass > start {
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

enum Step {
    /// Something was consumed or produced.
    Progress,
    /// The frame at the front is incomplete: at least this many more bytes are needed.
    Need(usize),
}

impl Http2 {
    fn new() -> Self {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        Http2 {
            decoder,
            block: None,
            out: Buffer::default(),
            rewriting: false,
            settled: false,
            pending_raw: Vec::new(),
        }
    }

    /// How many leading bytes of `data`, freshly read at a point where `input` was empty, may
    /// be handed on unchanged: the rest of a passing frame, then whole frames up to the first
    /// header frame or incomplete frame header. Updates `skip` for a frame that runs on.
    fn passable(&self, data: &[u8], skip: &mut usize) -> usize {
        let mut pos = (*skip).min(data.len());
        *skip -= pos;
        if *skip > 0 || self.block.is_some() {
            return pos;
        }
        while let Some(header) = FrameHeader::parse(&data[pos..]) {
            if header.kind == HEADERS || header.kind == CONTINUATION {
                break;
            }
            let frame_end = pos + FRAME_HEADER_LEN + header.len;
            if frame_end > data.len() {
                *skip = frame_end - data.len();
                return data.len();
            }
            pos = frame_end;
        }
        pos
    }

    /// Handles the frame at the front of `input`, which starts at a frame boundary: a passing
    /// frame becomes `skip`, a complete header frame is consumed.
    fn step(
        &mut self,
        input: &mut Buffer,
        skip: &mut usize,
    ) -> Result<Step, (io::ErrorKind, String)> {
        let data = input.data();
        let Some(header) = FrameHeader::parse(data) else {
            return Ok(Step::Need(FRAME_HEADER_LEN - data.len()));
        };
        let in_block = self.block.is_some();
        if in_block && header.kind != CONTINUATION {
            return Err(protocol_error(format!(
                "frame type {:#x} inside a header block, where only CONTINUATION may come",
                header.kind
            )));
        }
        // A CONTINUATION outside a block passes on, for h2 to refuse.
        if header.kind != HEADERS && !in_block {
            *skip = FRAME_HEADER_LEN + header.len;
            return Ok(Step::Progress);
        }
        if header.len > MAX_FRAME_SIZE {
            return Err(protocol_error(format!(
                "a header frame of {} bytes, over the {MAX_FRAME_SIZE}-byte frame size",
                header.len
            )));
        }
        let frame_len = FRAME_HEADER_LEN + header.len;
        if data.len() < frame_len {
            return Ok(Step::Need(frame_len - data.len()));
        }
        if !self.rewriting {
            let raw = &data[..frame_len];
            match &mut self.block {
                Some(block) => block.raw.extend_from_slice(raw),
                None => self.pending_raw = raw.to_vec(),
            }
        }
        self.header_frame(header, &data[FRAME_HEADER_LEN..frame_len])?;
        input.consume(frame_len);
        Ok(Step::Progress)
    }

    fn header_frame(
        &mut self,
        header: FrameHeader,
        payload: &[u8],
    ) -> Result<(), (io::ErrorKind, String)> {
        match &mut self.block {
            None => {
                let mut rest = payload;
                if header.flags & PADDED != 0 {
                    let Some((&pad, after)) = rest.split_first() else {
                        return Err(protocol_error(
                            "a padded HEADERS frame without a pad length",
                        ));
                    };
                    let Some(unpadded) = after.len().checked_sub(usize::from(pad)) else {
                        return Err(protocol_error("HEADERS padding longer than the frame"));
                    };
                    rest = &after[..unpadded];
                }
                let mut priority = None;
                if header.flags & PRIORITY != 0 {
                    let Some((fields, after)) = rest.split_first_chunk::<PRIORITY_LEN>() else {
                        return Err(protocol_error("a HEADERS frame too short for its priority"));
                    };
                    priority = Some(*fields);
                    rest = after;
                }
                self.block = Some(Block {
                    raw: std::mem::take(&mut self.pending_raw),
                    stream_id: header.stream_id,
                    end_stream: header.flags & END_STREAM != 0,
                    priority,
                    fragment: rest.to_vec(),
                });
            }
            Some(block) => {
                if header.stream_id != block.stream_id {
                    return Err(protocol_error(format!(
                        "CONTINUATION for stream {} inside a header block of stream {}",
                        header.stream_id, block.stream_id
                    )));
                }
                if block.fragment.len() + payload.len() > MAX_HEADER_BLOCK {
                    return Err(protocol_error(format!(
                        "a header block over the {MAX_HEADER_BLOCK}-byte bound"
                    )));
                }
                block.fragment.extend_from_slice(payload);
            }
        }
        if header.flags & END_HEADERS != 0
            && let Some(block) = self.block.take()
        {
            self.reencode(&block)?;
        }
        Ok(())
    }

    /// Decodes a whole header block and writes it to `out` again, fixed and table-free.
    fn reencode(&mut self, block: &Block) -> Result<(), (io::ErrorKind, String)> {
        let mut encoded = Vec::with_capacity(block.fragment.len() + 64);
        let mut list_size = 0usize;
        let mut too_big = false;
        let mut fixed = false;
        self.decoder
            .decode_with_cb(&block.fragment, |name, value| {
                list_size += name.len() + value.len() + 32;
                too_big |= list_size > MAX_HEADER_BLOCK;
                if too_big {
                    return;
                }
                let value: &[u8] = &value;
                let value = match &*name {
                    b":authority" => match fixed_authority(value) {
                        Some(f) => {
                            fixed = true;
                            f
                        }
                        None => value,
                    },
                    _ => value,
                };
                encode_literal(&mut encoded, &name, value);
            })
            .map_err(|e| protocol_error(format!("bad HPACK from the client: {e}")))?;
        if too_big {
            return Err(protocol_error(format!(
                "a decoded header list over the {MAX_HEADER_BLOCK}-byte bound"
            )));
        }
        if !self.rewriting && !fixed {
            self.out.append(|out| out.extend_from_slice(&block.raw));
            self.settled = true;
        } else {
            self.rewriting = true;
            self.out.append(|out| write_block(out, block, &encoded));
        }
        Ok(())
    }
}

/// The host:port in an `:authority` h2 would refuse, such as `http://127.0.0.1:2379` or
/// `host:port/path`; `None` when the value is fine as it is or cannot be repaired.
fn fixed_authority(value: &[u8]) -> Option<&[u8]> {
    if Authority::try_from(value).is_ok() {
        return None;
    }
    let rest = match value.windows(3).position(|w| w == b"://") {
        Some(i) if is_scheme(&value[..i]) => &value[i + 3..],
        _ => value,
    };
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let candidate = &rest[..end];
    Authority::try_from(candidate).is_ok().then_some(candidate)
}

/// RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
fn is_scheme(s: &[u8]) -> bool {
    s.first().is_some_and(u8::is_ascii_alphabetic)
        && s.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Frames `encoded` as HEADERS, then CONTINUATION as needed, each within h2's frame size.
fn write_block(out: &mut Vec<u8>, block: &Block, encoded: &[u8]) {
    let priority: &[u8] = block.priority.as_ref().map_or(&[], |p| &p[..]);
    let (first, mut rest) = encoded.split_at(encoded.len().min(MAX_FRAME_SIZE - priority.len()));
    let mut flags = if block.end_stream { END_STREAM } else { 0 };
    if block.priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    out.reserve(
        priority.len() + encoded.len() + FRAME_HEADER_LEN * (2 + encoded.len() / MAX_FRAME_SIZE),
    );
    FrameHeader {
        len: priority.len() + first.len(),
        kind: HEADERS,
        flags,
        stream_id: block.stream_id,
    }
    .write(out);
    out.extend_from_slice(priority);
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(rest.len().min(MAX_FRAME_SIZE));
        rest = after;
        FrameHeader {
            len: chunk.len(),
            kind: CONTINUATION,
            flags: if rest.is_empty() { END_HEADERS } else { 0 },
            stream_id: block.stream_id,
        }
        .write(out);
        out.extend_from_slice(chunk);
    }
}

/// A literal header field without indexing (RFC 7541 section 6.2.2): it leaves the decoder's
/// dynamic table alone. Names in the static table go by index, to keep blocks small.
fn encode_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    match static_name_index(name) {
        Some(index) => encode_integer(out, index, 4, 0x00),
        None => {
            out.push(0x00);
            encode_string(out, name);
        }
    }
    encode_string(out, value);
}

fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    // The high bit clear: not Huffman-coded.
    encode_integer(out, s.len(), 7, 0x00);
    out.extend_from_slice(s);
}

/// RFC 7541 section 5.1.
fn encode_integer(out: &mut Vec<u8>, mut value: usize, prefix_bits: u8, pattern: u8) {
    let max_prefix = (1usize << prefix_bits) - 1;
    if value < max_prefix {
        out.push(pattern | value as u8);
        return;
    }
    out.push(pattern | max_prefix as u8);
    value -= max_prefix;
    while value >= 0x80 {
        out.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The static-table index of the names gRPC and the gateway send (RFC 7541 appendix A).
fn static_name_index(name: &[u8]) -> Option<usize> {
    Some(match name {
        b":authority" => 1,
        b":method" => 2,
        b":path" => 4,
        b":scheme" => 6,
        b"accept-encoding" => 16,
        b"accept" => 19,
        b"authorization" => 23,
        b"content-length" => 28,
        b"content-type" => 31,
        b"user-agent" => 58,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
