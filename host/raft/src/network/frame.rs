//! The peer transport's wire format. Every stream is opened by the dialing side with one byte,
//! its [`Kind`], followed by frames: a big-endian u32 length, then that many bytes. A request
//! frame is a protobuf message of `proto/conclave/raft.proto` (see `codec`); a reply frame is a
//! status byte then either that message or, for a refusal, a UTF-8 reason. A snapshot stream
//! carries, after its header frame, a u64 byte count and the raw file.
//!
//! Frames are bounded ([`MAX_FRAME`]); a bad frame ends its stream, never the process.

use prost::Message;
use quinn::{ReadExactError, RecvStream, SendStream, VarInt};

use crate::codec::CodecError;

/// The largest frame either end accepts. A replication request larger than a quarter of it is
/// split before sending (see `client`), so only a single entry this large cannot travel.
pub const MAX_FRAME: usize = 64 << 20;

/// The size of the pieces a snapshot file is read and sent in.
pub const SNAPSHOT_CHUNK: usize = 1 << 20;

/// What a stream carries, its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// One `AppendEntriesRequest`, one `AppendEntriesResponse`.
    AppendEntries = 1,
    /// One `VoteRequest`, one `VoteResponse`.
    Vote = 2,
    /// Like `Vote`, answered by `Raft::pre_vote`: it never changes the receiver's vote.
    PreVote = 3,
    /// One `TransferLeaderRequest`, one `TransferLeaderResponse`.
    TransferLeader = 4,
    /// `AppendEntriesRequest`s until the dialer finishes its side, one `StreamAppendResult`
    /// each, in order.
    StreamAppend = 5,
    /// A `SnapshotHeader`, a u64 byte count, the snapshot file; one `SnapshotResponse`.
    Snapshot = 6,
    /// One `MemberRequest`, one `MemberResponse` (see `member`).
    Member = 7,
}

impl Kind {
    pub(crate) fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::AppendEntries,
            2 => Kind::Vote,
            3 => Kind::PreVote,
            4 => Kind::TransferLeader,
            5 => Kind::StreamAppend,
            6 => Kind::Snapshot,
            7 => Kind::Member,
            _ => return None,
        })
    }
}

/// Application error codes for stream resets and connection closes.
pub(crate) mod code {
    use quinn::VarInt;

    /// A malformed frame or an unknown stream kind.
    pub(crate) const PROTOCOL: VarInt = VarInt::from_u32(1);
    /// The sender gave up (timeout, cancellation, its caller went away).
    pub(crate) const CANCELLED: VarInt = VarInt::from_u32(2);
    /// The member is shutting down.
    pub(crate) const SHUTDOWN: VarInt = VarInt::from_u32(3);
    /// A second connection between the same pair, closed in favour of the first.
    pub(crate) const REDUNDANT: VarInt = VarInt::from_u32(4);
    /// Nothing came back on this connection while an RPC waited: the peer is gone.
    pub(crate) const UNRESPONSIVE: VarInt = VarInt::from_u32(5);
    /// The peer's certificate does not name the member that was dialed.
    pub(crate) const WRONG_PEER: VarInt = VarInt::from_u32(6);
}

const STATUS_OK: u8 = 0;
const STATUS_REFUSED: u8 = 1;
/// Refusal reasons are for logs; a longer one is cut.
const MAX_REASON: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("reading: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("writing: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("the stream ended inside a frame")]
    Truncated,
    #[error("the stream ended before its reply")]
    NoReply,
    #[error("a frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(u64),
    #[error("an empty reply frame")]
    EmptyReply,
    #[error("unknown reply status {0}")]
    BadStatus(u8),
    #[error("undecodable message: {0}")]
    Codec(#[from] CodecError),
    #[error("undecodable message: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("the stream was already finished")]
    Finished,
    #[error("opening a stream: {0}")]
    Open(#[from] quinn::ConnectionError),
    #[error("the peer sent nothing for too long")]
    Stalled,
    #[error("snapshot file: {0}")]
    File(#[from] std::io::Error),
}

impl FrameError {
    /// Whether the other end abandoned the stream (it timed out, or its caller went away):
    /// routine, not a fault.
    pub(crate) fn abandoned(&self) -> bool {
        matches!(
            self,
            FrameError::Read(quinn::ReadError::Reset(_))
                | FrameError::Write(quinn::WriteError::Stopped(_))
        )
    }

    /// Why the connection, not just this stream, is gone, if it is.
    pub(crate) fn connection_lost(&self) -> Option<&quinn::ConnectionError> {
        match self {
            FrameError::Read(quinn::ReadError::ConnectionLost(e))
            | FrameError::Write(quinn::WriteError::ConnectionLost(e))
            | FrameError::Open(e) => Some(e),
            _ => None,
        }
    }
}

fn read_exact_error(e: ReadExactError) -> FrameError {
    match e {
        ReadExactError::FinishedEarly(_) => FrameError::Truncated,
        ReadExactError::ReadError(e) => FrameError::Read(e),
    }
}

fn put_len(buf: &mut Vec<u8>, len: usize) -> Result<(), FrameError> {
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len as u64));
    }
    // MAX_FRAME fits in a u32.
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Appends a request frame holding `msg` to `buf`.
pub(crate) fn put_message<M: Message>(buf: &mut Vec<u8>, msg: &M) -> Result<(), FrameError> {
    let len = msg.encoded_len();
    put_len(buf, len)?;
    buf.reserve(len);
    msg.encode_raw(buf);
    Ok(())
}

/// Appends a reply frame holding `msg` to `buf`.
pub(crate) fn put_reply<M: Message>(buf: &mut Vec<u8>, msg: &M) -> Result<(), FrameError> {
    let len = msg.encoded_len() + 1;
    put_len(buf, len)?;
    buf.reserve(len);
    buf.push(STATUS_OK);
    msg.encode_raw(buf);
    Ok(())
}

/// Appends a refusal frame to `buf`: the receiver could not answer (its Raft has stopped, ...).
pub(crate) fn put_refusal(buf: &mut Vec<u8>, reason: &str) {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    // At most MAX_REASON + 1 bytes: never over the limit.
    let _ = put_len(buf, reason.len() + 1);
    buf.push(STATUS_REFUSED);
    buf.extend_from_slice(reason);
}

/// What a reply frame said: the message bytes, or the peer's reason for not answering.
pub(crate) fn parse_reply(body: &[u8]) -> Result<Result<&[u8], String>, FrameError> {
    match body.split_first() {
        None => Err(FrameError::EmptyReply),
        Some((&STATUS_OK, msg)) => Ok(Ok(msg)),
        Some((&STATUS_REFUSED, reason)) => Ok(Err(String::from_utf8_lossy(reason).into_owned())),
        Some((&status, _)) => Err(FrameError::BadStatus(status)),
    }
}

/// Reads the next frame's body; `None` if the stream ended cleanly between frames. The body
/// grows as data arrives, so a lying length prefix costs no more memory than the bytes sent.
pub(crate) async fn read_frame(recv: &mut RecvStream) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(read_exact_error(e)),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len as u64));
    }
    let mut body = Vec::with_capacity(len.min(SNAPSHOT_CHUNK));
    while body.len() < len {
        match recv.read_chunk(len - body.len(), true).await? {
            Some(chunk) => body.extend_from_slice(&chunk.bytes),
            None => return Err(FrameError::Truncated),
        }
    }
    Ok(Some(body))
}

/// Reads a frame that must be there: a request or a reply.
pub(crate) async fn read_required(recv: &mut RecvStream) -> Result<Vec<u8>, FrameError> {
    read_frame(recv).await?.ok_or(FrameError::NoReply)
}

/// Reads a reply frame and decodes the message in it; the outer error is the stream's, the
/// inner one the peer's refusal.
pub(crate) async fn read_reply<M: Message + Default>(
    recv: &mut RecvStream,
) -> Result<Result<M, String>, FrameError> {
    let body = read_required(recv).await?;
    match parse_reply(&body)? {
        Ok(msg) => Ok(Ok(M::decode(msg)?)),
        Err(reason) => Ok(Err(reason)),
    }
}

/// Reads the byte that opens a stream.
pub(crate) async fn read_kind(recv: &mut RecvStream) -> Result<Result<Kind, u8>, FrameError> {
    let mut byte = [0u8; 1];
    recv.read_exact(&mut byte).await.map_err(read_exact_error)?;
    Ok(Kind::from_byte(byte[0]).ok_or(byte[0]))
}

/// Reads the u64 that precedes raw bytes.
pub(crate) async fn read_u64(recv: &mut RecvStream) -> Result<u64, FrameError> {
    let mut bytes = [0u8; 8];
    recv.read_exact(&mut bytes)
        .await
        .map_err(read_exact_error)?;
    Ok(u64::from_be_bytes(bytes))
}

/// The sending half of a stream that is reset, not silently finished, if it is dropped
/// before [`Outgoing::finish`]: quinn finishes a dropped stream, which would make a cut-off
/// transfer look complete to the receiver.
pub(crate) struct Outgoing(Option<SendStream>);

impl Outgoing {
    pub(crate) fn new(send: SendStream) -> Self {
        Outgoing(Some(send))
    }

    /// Sets the stream's priority (higher goes first; quinn's default is 0).
    pub(crate) fn set_priority(&self, priority: i32) {
        if let Some(send) = &self.0 {
            // Fails only on a stream already closed, which the next write reports.
            let _ = send.set_priority(priority);
        }
    }

    pub(crate) async fn write_all(&mut self, buf: &[u8]) -> Result<(), FrameError> {
        match &mut self.0 {
            Some(send) => Ok(send.write_all(buf).await?),
            None => Err(FrameError::Finished),
        }
    }

    /// Ends the stream cleanly once everything written is delivered.
    pub(crate) fn finish(mut self) {
        if let Some(mut send) = self.0.take() {
            // Fails only if the peer already stopped or reset it: nothing left to do.
            let _ = send.finish();
        }
    }

    /// Abandons the stream with `code`.
    pub(crate) fn reset(mut self, code: VarInt) {
        if let Some(mut send) = self.0.take() {
            let _ = send.reset(code);
        }
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        if let Some(mut send) = self.0.take() {
            let _ = send.reset(code::CANCELLED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in [
            Kind::AppendEntries,
            Kind::Vote,
            Kind::PreVote,
            Kind::TransferLeader,
            Kind::StreamAppend,
            Kind::Snapshot,
            Kind::Member,
        ] {
            assert_eq!(Kind::from_byte(kind as u8), Some(kind));
        }
        assert_eq!(Kind::from_byte(0), None);
        assert_eq!(Kind::from_byte(8), None);
    }

    #[test]
    fn replies_and_refusals() {
        let msg = conclave_proto::conclavepb::LogId {
            term: 3,
            node_id: 1,
            index: 9,
        };
        let mut buf = Vec::new();
        put_reply(&mut buf, &msg).unwrap();
        let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
        assert_eq!(len, buf.len() - 4);
        let body = parse_reply(&buf[4..]).unwrap().unwrap();
        assert_eq!(
            conclave_proto::conclavepb::LogId::decode(body).unwrap(),
            msg
        );

        let mut buf = Vec::new();
        let long = "é".repeat(MAX_REASON);
        put_refusal(&mut buf, &long);
        let reason = parse_reply(&buf[4..]).unwrap().unwrap_err();
        assert!(reason.len() <= MAX_REASON && reason.chars().all(|c| c == 'é'));

        assert!(matches!(parse_reply(&[]), Err(FrameError::EmptyReply)));
        assert!(matches!(
            parse_reply(&[9, 1]),
            Err(FrameError::BadStatus(9))
        ));
    }

    #[test]
    fn oversized_frames_are_refused() {
        let mut buf = Vec::new();
        assert!(matches!(
            put_len(&mut buf, MAX_FRAME + 1),
            Err(FrameError::TooLarge(_))
        ));
        assert!(buf.is_empty());
    }
}
