//! The broker-to-broker protocol on the quorum listener: Raft messages, metadata proposals and
//! heartbeats to the controller, replica fetches, transaction markers and transaction
//! verifications.
//!
//! A frame is a big-endian `u32` length and a body. A request body is one JSON [`Request`]. A
//! response body is a big-endian `u32` JSON length, the JSON answer, and raw bytes after it
//! (record batches of a replica fetch, never inside JSON). Frames are limited to
//! [`MAX_FRAME`]; a connection answers its requests in order. Nothing here is reachable by Kafka
//! clients: it listens on its own address.

use std::time::Duration;

use bytes::Bytes;
use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::metadata::{BrokerId, Command, Outcome};
use super::raft::TypeConfig;
use super::transport::{QuorumStream, secure};

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 256 * 1024 * 1024;

/// A request on the quorum listener.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Raft AppendEntries.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft RequestVote.
    Vote(VoteRequest<u64>),
    /// Raft InstallSnapshot (one chunk).
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Commit a metadata command (only the Raft leader takes it).
    Propose(Command),
    /// A broker's liveness report to the controller.
    Heartbeat(Heartbeat),
    /// A follower fetching its partitions from this leader.
    Fetch(ReplicaFetch),
    /// A follower asking where an epoch ended in the leader's log (KIP-101).
    EpochEnd(EpochEndRequest),
    /// A transaction coordinator's markers for partitions this broker leads (`txn_markers.rs`).
    WriteTxnMarkers(WriteTxnMarkersRequest),
    /// A partition leader asking the transaction coordinator whether partitions are in a
    /// producer's ongoing transaction (KIP-890's AddPartitionsToTxn `verify_only`,
    /// `txn_verification.rs`); answered with `Result<Vec<i16>, i16>`.
    VerifyTxnPartitions(VerifyTxnPartitionsRequest),
}

/// Whether `partitions` are in the ongoing transaction of `transactional_id`'s producer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VerifyTxnPartitionsRequest {
    /// The broker sending it (its certificate must name it).
    pub from: BrokerId,
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id of the batches to append.
    pub producer_id: i64,
    /// Their producer epoch.
    pub producer_epoch: i16,
    /// Topic and partition of each.
    pub partitions: Vec<(String, i32)>,
}

/// Transaction markers for the partitions the receiving broker leads.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WriteTxnMarkersRequest {
    /// The broker sending it (its certificate must name it).
    pub from: BrokerId,
    /// The marker.
    pub marker: crate::producers::TxnMarker,
    /// Topic and partition of each.
    pub partitions: Vec<(String, i32)>,
}

/// Answer to [`Request::Propose`] and [`Request::Heartbeat`].
#[derive(Debug, Serialize, Deserialize)]
pub enum ProposeAnswer {
    /// Committed at this Raft index with this outcome.
    Committed {
        /// Raft log index.
        index: u64,
        /// The state machine's answer.
        outcome: Outcome,
    },
    /// Not the leader; try this one (if known).
    NotLeader {
        /// The leader's node id.
        leader: Option<u64>,
    },
    /// Failed for another reason.
    Failed(String),
}

/// A broker's heartbeat.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Broker.
    pub id: BrokerId,
    /// Its registration's incarnation.
    pub incarnation: uuid::Uuid,
    /// It has applied the metadata up to (and including) its registration.
    pub caught_up: bool,
    /// It is shutting down: move leadership away and do not unfence it.
    pub shutting_down: bool,
    /// Its quorum address (so a broker outside the voters can be added as a learner).
    pub quorum_addr: String,
}

/// One partition of a replica fetch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FetchPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The follower's log end offset.
    pub fetch_offset: i64,
    /// The leader epoch the follower believes in.
    pub leader_epoch: i32,
}

/// A follower's fetch.
///
/// The session fields (KIP-227) default to a sessionless full fetch, as a broker without fetch
/// sessions sends; such a fetch is answered by [`ReplicaFetchAnswer::Plain`], which that broker
/// reads. A broker without sessions ignores the fields and answers `Plain`, which a follower
/// reads as "no session". So brokers with and without sessions replicate from each other.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplicaFetch {
    /// The follower.
    pub replica_id: BrokerId,
    /// Partitions: all of them for a full fetch, the changed ones for an incremental one.
    pub partitions: Vec<FetchPartition>,
    /// How long to wait for new data when there is none.
    pub max_wait_ms: u64,
    /// Bytes per partition at most (the first batch is always whole).
    pub partition_max_bytes: usize,
    /// The fetch session (0: none).
    #[serde(default)]
    pub session_id: i32,
    /// The session epoch: 0 asks for a session, -1 (the default) fetches without one, else
    /// incremental.
    #[serde(default = "sessionless")]
    pub session_epoch: i32,
    /// Partitions an incremental fetch drops from its session.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forgotten: Vec<(String, i32)>,
}

fn sessionless() -> i32 {
    crate::fetch_sessions::FINAL_EPOCH
}

/// One partition of a replica fetch answer; its records follow the JSON in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FetchedPartition {
    /// Kafka error code.
    pub error: i16,
    /// The leader's high watermark.
    pub high_watermark: i64,
    /// The leader's log start offset.
    pub log_start_offset: i64,
    /// Length of this partition's records in the raw bytes.
    pub records_len: usize,
    /// Topic and partition (in session answers, which list only some partitions; a plain answer
    /// pairs by position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<(String, i32)>,
}

/// The answer to a replica fetch.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReplicaFetchAnswer {
    /// To a sessionless fetch: one entry per partition asked, in order.
    Plain(Vec<FetchedPartition>),
    /// To a fetch that uses or asks for a session.
    Session(SessionFetchAnswer),
}

/// The answer to a replica fetch with session fields.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionFetchAnswer {
    /// A session error (FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH, or
    /// INVALID_REQUEST for a replica id below 0: nothing read), else 0.
    pub error: i16,
    /// The session (0: none was made, or it closed).
    pub session_id: i32,
    /// All partitions for a full fetch; for an incremental one, those with something new.
    pub partitions: Vec<FetchedPartition>,
}

/// Where an epoch ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochEndRequest {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The leader epoch the follower believes in.
    pub current_leader_epoch: i32,
    /// The epoch asked about.
    pub epoch: i32,
}

/// `(error, epoch, end offset)`.
pub type EpochEndAnswer = (i16, i32, i64);

/// Reads one frame body.
///
/// # Errors
/// I/O errors, or a frame over [`MAX_FRAME`].
///
/// # Cancel safety
/// Not cancel safe: a cancelled read leaves the stream mid-frame (drop the connection).
pub async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes is too large"
        )));
    }
    // Grow with what arrives rather than trusting the length prefix with an allocation.
    let mut body = Vec::with_capacity(len.min(1 << 20));
    let read = (&mut *stream)
        .take(len as u64)
        .read_to_end(&mut body)
        .await?;
    if read < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed inside a frame",
        ));
    }
    Ok(body)
}

/// Writes a response frame: JSON then raw bytes.
///
/// # Errors
/// I/O or serialization errors.
pub async fn write_response<T: Serialize, S: AsyncWrite + Unpin>(
    stream: &mut S,
    answer: &T,
    raw: &[Bytes],
) -> std::io::Result<()> {
    write_response_sized(stream, answer, raw).await.map(|_| ())
}

/// [`write_response`], returning the frame's size (length prefix included).
///
/// # Errors
/// I/O or serialization errors.
pub async fn write_response_sized<T: Serialize, S: AsyncWrite + Unpin>(
    stream: &mut S,
    answer: &T,
    raw: &[Bytes],
) -> std::io::Result<usize> {
    let json = serde_json::to_vec(answer).map_err(std::io::Error::other)?;
    let raw_len: usize = raw.iter().map(Bytes::len).sum();
    let total = 4 + json.len() + raw_len;
    let mut head = Vec::with_capacity(8 + json.len());
    head.extend_from_slice(
        &u32::try_from(total)
            .map_err(std::io::Error::other)?
            .to_be_bytes(),
    );
    head.extend_from_slice(
        &u32::try_from(json.len())
            .map_err(std::io::Error::other)?
            .to_be_bytes(),
    );
    head.extend_from_slice(&json);
    stream.write_all(&head).await?;
    for chunk in raw {
        stream.write_all(chunk).await?;
    }
    // Over TLS a write may leave its end in the session's buffer: push it out, or the caller
    // waits for an answer that is never sent.
    stream.flush().await?;
    Ok(4 + total)
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Cannot connect.
    #[error("cannot connect to {addr}")]
    Connect {
        /// Address.
        addr: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The exchange failed or timed out.
    #[error("call to {addr} failed")]
    Io {
        /// Address.
        addr: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// A client connection to one peer, reconnected on demand. One call at a time.
pub struct Peer {
    addr: String,
    stream: Option<QuorumStream>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("addr", &self.addr)
            .field("connected", &self.stream.is_some())
            .finish()
    }
}

impl Peer {
    /// A client for `addr` (connects on first use).
    pub fn new(addr: impl Into<String>) -> Peer {
        Peer {
            addr: addr.into(),
            stream: None,
        }
    }

    /// The peer's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` and reads the answer and its raw bytes, within `timeout`.
    ///
    /// # Errors
    /// [`CallError`]; the connection is dropped after any failure.
    pub async fn call<T: DeserializeOwned>(
        &mut self,
        request: &Request,
        timeout: Duration,
    ) -> Result<(T, Bytes), CallError> {
        let result = tokio::time::timeout(timeout, self.exchange(request)).await;
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(_) => Err(CallError::Io {
                addr: self.addr.clone(),
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
            }),
        };
        if outcome.is_err() {
            self.stream = None;
        }
        outcome
    }

    async fn exchange<T: DeserializeOwned>(
        &mut self,
        request: &Request,
    ) -> Result<(T, Bytes), CallError> {
        if self.stream.is_none() {
            let stream =
                TcpStream::connect(&self.addr)
                    .await
                    .map_err(|source| CallError::Connect {
                        addr: self.addr.clone(),
                        source,
                    })?;
            let _ = stream.set_nodelay(true);
            let stream = secure(stream).await.map_err(|source| CallError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
            self.stream = Some(stream);
        }
        let addr = self.addr.clone();
        let io = |source: std::io::Error| CallError::Io {
            addr: addr.clone(),
            source,
        };
        let Some(stream) = self.stream.as_mut() else {
            return Err(io(std::io::Error::other("not connected")));
        };
        let body = serde_json::to_vec(request).map_err(|e| io(std::io::Error::other(e)))?;
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(
            &u32::try_from(body.len())
                .map_err(|e| io(std::io::Error::other(e)))?
                .to_be_bytes(),
        );
        frame.extend_from_slice(&body);
        stream.write_all(&frame).await.map_err(io)?;
        stream.flush().await.map_err(io)?;
        let body = read_frame(stream).await.map_err(io)?;
        if body.len() < 4 {
            return Err(io(std::io::Error::other("short response")));
        }
        let json_len = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
        let Some(json) = body.get(4..4 + json_len) else {
            return Err(io(std::io::Error::other("bad response length")));
        };
        let answer = serde_json::from_slice(json).map_err(|e| io(std::io::Error::other(e)))?;
        let raw = Bytes::from(body).slice(4 + json_len..);
        Ok((answer, raw))
    }
}

/// Address overrides by node id (`--peer-route`, for fault-injection proxies in tests).
pub type Routes = std::sync::Arc<std::collections::BTreeMap<u64, String>>;

/// The address to reach node `id` at: its route override, else `default`.
pub fn route(routes: &Routes, id: u64, default: &str) -> String {
    routes
        .get(&id)
        .cloned()
        .unwrap_or_else(|| default.to_owned())
}

/// Creates Raft connections to the other quorum members.
#[derive(Clone, Debug, Default)]
pub struct Network {
    /// Address overrides.
    pub routes: Routes,
}

/// A Raft connection to one member.
pub struct Connection {
    target: u64,
    peer: Peer,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Connection {
        Connection {
            target,
            peer: Peer::new(route(&self.routes, target, &node.addr)),
        }
    }
}

impl Connection {
    async fn raft_call<T, E>(
        &mut self,
        request: Request,
        option: &RPCOption,
    ) -> Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        T: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let timeout = option.hard_ttl();
        match self
            .peer
            .call::<Result<T, RaftError<u64, E>>>(&request, timeout)
            .await
        {
            Ok((Ok(answer), _)) => Ok(answer),
            Ok((Err(error), _)) => Err(RPCError::RemoteError(RemoteError::new(self.target, error))),
            // Any transport failure (refused, reset, timed out) makes openraft back off
            // (`backoff`) instead of retrying at once and logging every attempt.
            Err(error) => Err(RPCError::Unreachable(Unreachable::new(&error))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.raft_call(Request::AppendEntries(rpc), &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.raft_call(Request::InstallSnapshot(rpc), &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.raft_call(Request::Vote(rpc), &option).await
    }
}

/// Decodes a request body: the quorum listener's decoder of untrusted input.
///
/// # Errors
/// A message saying why the body is not a request.
pub fn decode_request(body: &[u8]) -> Result<Request, String> {
    serde_json::from_slice(body).map_err(|e| format!("malformed quorum request: {e}"))
}
