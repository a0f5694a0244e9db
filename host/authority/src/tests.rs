//! Tests of the :authority rewriting shim: hand-built HTTP/2 streams fed in random chunks.
use super::*;
use tokio::io::AsyncReadExt;

/// A small deterministic generator: the tests must be reproducible from their seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A client that delivers its bytes in random small pieces, sometimes making the reader
/// wait.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    rng: Rng,
}

impl AsyncRead for Chunked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.rng.below(4) == 0 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = (1 + this.rng.below(40))
            .min(this.data.len() - this.pos)
            .min(buf.remaining());
        buf.put_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// Everything the server would read from `input`, read in random-sized pieces too.
async fn read_through(input: &[u8], seed: u64) -> io::Result<Vec<u8>> {
    let mut rng = Rng(seed);
    let mut io = AuthorityFix::new(Chunked {
        data: input.to_vec(),
        pos: 0,
        rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
    });
    let mut out = Vec::new();
    loop {
        let mut piece = vec![0; 1 + rng.below(100)];
        let n = io.read(&mut piece).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&piece[..n]);
    }
}

fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    FrameHeader {
        len: payload.len(),
        kind,
        flags,
        stream_id,
    }
    .write(&mut out);
    out.extend_from_slice(payload);
    out
}

fn string(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_string(&mut out, s);
    out
}

/// Literal with incremental indexing, indexed name.
fn indexing_indexed_name(index: usize, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_integer(&mut out, index, 6, 0x40);
    out.extend(string(value));
    out
}

/// Literal with incremental indexing, new name.
fn indexing_new_name(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x40];
    out.extend(string(name));
    out.extend(string(value));
    out
}

fn never_indexed(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x10];
    out.extend(string(name));
    out.extend(string(value));
    out
}

fn indexed(index: usize) -> Vec<u8> {
    let mut out = Vec::new();
    encode_integer(&mut out, index, 7, 0x80);
    out
}

fn size_update(size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    encode_integer(&mut out, size, 5, 0x20);
    out
}

type Headers = Vec<(Vec<u8>, Vec<u8>)>;

fn headers(list: &[(&str, &str)]) -> Headers {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn request(authority: &str, path: &str) -> Headers {
    headers(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ])
}

#[derive(Debug, PartialEq)]
enum Frame {
    /// A frame other than HEADERS/CONTINUATION, with its bytes.
    Other(Vec<u8>),
    /// A decoded header block: stream, END_STREAM, priority fields.
    Block(u32, bool, Option<Vec<u8>>, Headers),
}

/// A header block being collected from the output: stream, END_STREAM, priority fields,
/// fragment.
type OutputBlock = (u32, bool, Option<Vec<u8>>, Vec<u8>);

/// Splits the server's view into frames, decoding every header block with a fresh decoder
/// whose dynamic table holds nothing: so no block may lean on any table state.
fn parse_output(bytes: &[u8]) -> Vec<Frame> {
    assert_eq!(&bytes[..24], PREFACE);
    let mut rest = &bytes[24..];
    let mut frames = Vec::new();
    let mut block: Option<OutputBlock> = None;
    while !rest.is_empty() {
        let h = FrameHeader::parse(rest).expect("a whole frame header");
        assert!(h.len <= MAX_FRAME_SIZE, "a frame over h2's frame size");
        let (raw, after) = rest.split_at(FRAME_HEADER_LEN + h.len);
        rest = after;
        let payload = &raw[FRAME_HEADER_LEN..];
        match h.kind {
            HEADERS => {
                assert!(block.is_none());
                assert_eq!(h.flags & PADDED, 0, "padding is dropped");
                let (prio, frag) = if h.flags & PRIORITY != 0 {
                    (Some(payload[..5].to_vec()), &payload[5..])
                } else {
                    (None, payload)
                };
                block = Some((h.stream_id, h.flags & END_STREAM != 0, prio, frag.to_vec()));
            }
            CONTINUATION => {
                let b = block.as_mut().expect("CONTINUATION inside a block");
                assert_eq!(b.0, h.stream_id);
                b.3.extend_from_slice(payload);
            }
            _ => {
                assert!(block.is_none());
                frames.push(Frame::Other(raw.to_vec()));
            }
        }
        if matches!(h.kind, HEADERS | CONTINUATION) && h.flags & END_HEADERS != 0 {
            let (stream, end, prio, frag) = block.take().expect("a block");
            let mut decoder = Decoder::new();
            decoder.set_max_table_size(0);
            let list = decoder.decode(&frag).expect("table-free HPACK");
            frames.push(Frame::Block(stream, end, prio, list));
        }
    }
    assert!(block.is_none(), "an unfinished header block");
    frames
}

/// The client's stream, and what the server must see of it.
fn client_stream() -> (Vec<u8>, Vec<Frame>) {
    let mut input = PREFACE.to_vec();
    let mut expected = Vec::new();

    // SETTINGS (ENABLE_PUSH = 0) and a WINDOW_UPDATE pass as they are.
    for raw in [
        frame(0x4, 0, 0, &[0, 2, 0, 0, 0, 0]),
        frame(0x8, 0, 0, &[0, 0x0f, 0, 1]),
    ] {
        input.extend(&raw);
        expected.push(Frame::Other(raw));
    }

    // Stream 1: the bad authority, entered into the client's dynamic table, after a table
    // size update that the server must never see.
    let mut block = size_update(4096);
    block.extend(indexed(3)); // :method POST
    block.extend(indexed(6)); // :scheme http
    block.extend(indexing_indexed_name(
        4,
        b"/etcdserverpb.Maintenance/Status",
    ));
    block.extend(indexing_indexed_name(1, b"http://127.0.0.1:2379"));
    block.extend(indexing_indexed_name(31, b"application/grpc"));
    block.extend(indexing_new_name(b"te", b"trailers"));
    input.extend(frame(HEADERS, END_HEADERS, 1, &block));
    expected.push(Frame::Block(
        1,
        false,
        None,
        request("127.0.0.1:2379", "/etcdserverpb.Maintenance/Status"),
    ));

    // Stream 3: everything from the dynamic table (newest first: te=65... path=62 after
    // four entries: 62 te, 63 content-type, 64 authority, 65 path).
    let mut block = Vec::new();
    for i in [3, 6, 65, 64, 63, 62] {
        block.extend(indexed(i));
    }
    input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &block));
    expected.push(Frame::Block(
        3,
        true,
        None,
        request("127.0.0.1:2379", "/etcdserverpb.Maintenance/Status"),
    ));

    // Stream 5: HEADERS + CONTINUATION with PRIORITY, a Huffman-coded authority (RFC 7541
    // C.4.1, "www.example.com") that is fine already, and a never-indexed field.
    let mut block = indexed(3);
    block.extend(indexed(6));
    block.extend(indexed(65)); // the path, still in the table
    block.extend([0x01, 0x8c]); // without indexing, so the table stays as it was
    block.extend([
        0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
    ]);
    block.extend(never_indexed(b"token", b"secret"));
    let (a, b) = block.split_at(7);
    let mut payload = vec![0x80, 0, 0, 1, 15]; // exclusive on stream 1, weight 16
    payload.extend(a);
    input.extend(frame(HEADERS, PRIORITY, 5, &payload));
    input.extend(frame(CONTINUATION, END_HEADERS, 5, b));
    expected.push(Frame::Block(
        5,
        false,
        Some(vec![0x80, 0, 0, 1, 15]),
        headers(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/etcdserverpb.Maintenance/Status"),
            (":authority", "www.example.com"),
            ("token", "secret"),
        ]),
    ));

    // Stream 7: a padded HEADERS with an authority that carries a path, then DATA.
    let mut block = indexed(3);
    block.extend(indexed(6));
    block.extend(indexed(65));
    block.extend(indexing_indexed_name(
        1,
        b"https://node-1.example:2379/v3/kv",
    ));
    let mut payload = vec![6];
    payload.extend(&block);
    payload.extend([0; 6]);
    input.extend(frame(HEADERS, PADDED | END_HEADERS, 7, &payload));
    expected.push(Frame::Block(
        7,
        false,
        None,
        headers(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/etcdserverpb.Maintenance/Status"),
            (":authority", "node-1.example:2379"),
        ]),
    ));
    let data = frame(0x0, END_STREAM, 7, &[0, 0, 0, 0, 3, 1, 2, 3]);
    input.extend(&data);
    expected.push(Frame::Other(data));

    // Stream 9: a 3000-byte value entered once and referenced eight times: the block is
    // small on the wire and well over one frame re-encoded.
    let big = "x".repeat(3000);
    let mut block = indexed(3);
    block.extend(indexing_new_name(b"x-big", big.as_bytes()));
    for _ in 0..7 {
        block.extend(indexed(62));
    }
    input.extend(frame(HEADERS, END_HEADERS, 9, &block));
    let list: Vec<(&str, &str)> = std::iter::once((":method", "POST"))
        .chain(std::iter::repeat_n(("x-big", big.as_str()), 8))
        .collect();
    expected.push(Frame::Block(9, false, None, headers(&list)));

    // A large DATA frame and a PING pass byte for byte.
    for raw in [
        frame(0x0, 0, 9, &vec![0xab; 16_000]),
        frame(0x6, 0, 0, b"pingpong"),
    ] {
        input.extend(&raw);
        expected.push(Frame::Other(raw));
    }

    // Trailers-like HEADERS on stream 9 that end it.
    let block = indexing_new_name(b"grpc-status", b"0");
    input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 9, &block));
    expected.push(Frame::Block(
        9,
        true,
        None,
        headers(&[("grpc-status", "0")]),
    ));

    (input, expected)
}

#[tokio::test]
async fn header_blocks_are_reencoded_and_the_authority_fixed() {
    let (input, expected) = client_stream();
    for seed in 1..=300 {
        let out = read_through(&input, seed).await.expect("a clean stream");
        let frames = parse_output(&out);
        assert_eq!(frames, expected, "seed {seed}");
    }
}

#[tokio::test]
async fn an_oversized_block_is_split_into_continuations() {
    let (input, _) = client_stream();
    let out = read_through(&input, 7).await.expect("a clean stream");
    // Stream 9's block (over 24 KB) arrives in two frames at least.
    let mut rest = &out[24..];
    let mut stream9 = Vec::new();
    while let Some(h) = FrameHeader::parse(rest) {
        if h.stream_id == 9 && matches!(h.kind, HEADERS | CONTINUATION) {
            stream9.push((h.kind, h.len, h.flags & END_HEADERS != 0));
        }
        rest = &rest[FRAME_HEADER_LEN + h.len..];
    }
    assert_eq!(stream9[0].0, HEADERS);
    assert_eq!(stream9[0].1, MAX_FRAME_SIZE);
    assert!(!stream9[0].2);
    assert_eq!(stream9[1].0, CONTINUATION);
    assert!(stream9[1].2);
}

#[tokio::test]
async fn a_connection_whose_first_authority_is_fine_passes_unchanged() {
    // What the etcd-client crate and etcdctl with a bare host:port send: a valid authority
    // entered into the dynamic table, then later requests that refer to it.
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x4, 0, 0, &[]));
    let mut first = indexing_indexed_name(1, b"127.0.0.1:2379");
    first.extend(indexing_new_name(b":path", b"/etcdserverpb.KV/Range"));
    input.extend(frame(HEADERS, END_HEADERS, 1, &first));
    input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\0"));
    let mut second = indexed(62);
    second.extend(indexed(63));
    input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &second));
    for seed in 1..=100 {
        assert_eq!(read_through(&input, seed).await.expect("read"), input);
    }
}

#[tokio::test]
async fn http1_passes_unchanged() {
    let request = b"POST /v3/kv/range HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n\
        Content-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"key\":\"Zm9v\"}"
        .to_vec();
    for seed in 1..=50 {
        assert_eq!(read_through(&request, seed).await.expect("read"), request);
    }
    // Shorter than the preface, and a near miss of it.
    for short in [
        &b"GET"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r",
        b"PRI * HTTP/1.1\r\n\r\n\r\n\r\n\r\n\r\n",
    ] {
        assert_eq!(read_through(short, 3).await.expect("read"), short);
    }
}

async fn failure(after_preface: &[u8]) -> io::Error {
    let mut input = PREFACE.to_vec();
    input.extend(after_preface);
    read_through(&input, 11)
        .await
        .expect_err("the connection fails")
}

#[tokio::test]
async fn protocol_violations_fail_the_connection() {
    // A header frame over the bound fails at its frame header, before any payload.
    let mut oversized = Vec::new();
    FrameHeader {
        len: 0xff_ffff,
        kind: HEADERS,
        flags: END_HEADERS,
        stream_id: 1,
    }
    .write(&mut oversized);
    assert_eq!(failure(&oversized).await.kind(), io::ErrorKind::InvalidData);

    // Endless CONTINUATION.
    let mut endless = frame(HEADERS, 0, 1, &indexed(3));
    for _ in 0..70 {
        endless.extend(frame(CONTINUATION, 0, 1, &[0x82; 16_000]));
    }
    assert_eq!(failure(&endless).await.kind(), io::ErrorKind::InvalidData);

    // An HPACK bomb: one 4000-byte entry referenced a few hundred times.
    let mut bomb = indexing_new_name(b"x", &[b'y'; 4000]);
    bomb.extend(std::iter::repeat_n(0xbe, 300));
    assert_eq!(
        failure(&frame(HEADERS, END_HEADERS, 1, &bomb)).await.kind(),
        io::ErrorKind::InvalidData
    );

    // Garbage HPACK: an index past both tables.
    let garbage = frame(HEADERS, END_HEADERS, 1, &indexed(200));
    assert_eq!(failure(&garbage).await.kind(), io::ErrorKind::InvalidData);

    // A table size over what the server allows.
    let mut big_table = size_update(1 << 20);
    big_table.extend(indexed(2));
    let err = failure(&frame(HEADERS, END_HEADERS, 1, &big_table)).await;
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);

    // Padding longer than the frame.
    let padded = frame(HEADERS, PADDED | END_HEADERS, 1, &[9, 0x82]);
    assert_eq!(failure(&padded).await.kind(), io::ErrorKind::InvalidData);

    // Another frame, or another stream, inside a header block.
    let mut interleaved = frame(HEADERS, 0, 1, &indexed(3));
    interleaved.extend(frame(0x0, 0, 1, b"x"));
    assert_eq!(
        failure(&interleaved).await.kind(),
        io::ErrorKind::InvalidData
    );
    let mut crossed = frame(HEADERS, 0, 1, &indexed(3));
    crossed.extend(frame(CONTINUATION, END_HEADERS, 3, &indexed(6)));
    assert_eq!(failure(&crossed).await.kind(), io::ErrorKind::InvalidData);

    // The client leaving within a header frame.
    let cut = &frame(HEADERS, END_HEADERS, 1, &[0x83, 0x86])[..10];
    assert_eq!(failure(cut).await.kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn authorities() {
    let fix =
        |s: &str| fixed_authority(s.as_bytes()).map(|b| String::from_utf8_lossy(b).into_owned());
    assert_eq!(
        fix("http://127.0.0.1:2379").as_deref(),
        Some("127.0.0.1:2379")
    );
    assert_eq!(fix("https://[::1]:2379/").as_deref(), Some("[::1]:2379"));
    assert_eq!(fix("node-1:2379/some/path").as_deref(), Some("node-1:2379"));
    assert_eq!(fix("127.0.0.1:2379"), None);
    assert_eq!(fix("localhost"), None);
    // Beyond repair: left for h2 to refuse.
    assert_eq!(fix("http://"), None);
    assert_eq!(fix("bad host"), None);
}
