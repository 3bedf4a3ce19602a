//! State partitions: where a job's streaming state lives and how a batch reaches it.
//!
//! The state of an aggregation or a `SELECT DISTINCT` is split into a fixed number of partitions
//! (`SET state_partitions = N`, default [`crate::plan::DEFAULT_STATE_PARTITIONS`]; fixed by the
//! checkpoint when the job first runs, as Spark fixes `spark.sql.shuffle.partitions`). A row of a
//! task's partial result belongs to partition `hash(key) % N` ([`split`]): for an aggregation the
//! key is the group key without the window columns (so a key's session windows, which merge, stay
//! in one partition), for `DISTINCT` the whole row. The hash ([`stable_hashes`]) is Kafka's murmur2
//! over a fixed encoding of the key's values, so it is the same in every process and, for string
//! and fixed-width keys (integers, floats, timestamps, dates, decimals), across versions of hdi and
//! its libraries (other types are hashed through their text): a checkpoint's state is partitioned
//! by it, and a hash that changed under a running job would send a key's rows to another
//! partition than its state.
//!
//! Each partition has an owner, a worker ([`assign`]: sticky, balanced to within one partition,
//! recomputed from the live workers at every batch boundary). The driver sends each owner, per
//! batch and partition, the partials of that partition in task order ([`StateRequest`]); the
//! owner merges them into the partition's state, emits (append: windows the watermark passed;
//! update: changed groups; `DISTINCT`: rows not seen before) and answers the emitted rows and a
//! snapshot of the state after the batch ([`StateReply`]), which the driver writes to the
//! checkpoint (`state/<batch>/<partition>`) before it commits.
//!
//! Workers keep each partition's state in memory between batches ([`StateStore`]), tagged with
//! the batch it is the state after (its version). A request names its base version (the
//! previous batch); an owner holding another version answers [`ApplyError::Missing`] and the
//! driver sends the request again with the base snapshot from the checkpoint. That one rule
//! covers a partition that moved to another worker, a restarted worker, a batch run again after a
//! driver crash (the owner may hold the batch's own version by then) and a failed attempt (which
//! leaves no version). Merging the same partials in the same order into the same base gives the
//! same state and output, so a rerun emits exactly what its first run emitted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::array::{Array, ArrayData, ArrayRef, AsArray as _};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use serde::{Deserialize, Serialize};

use crate::plan::{JobPlan, OutputMode, Shape};
use crate::state::{AggState, DedupState, read_ipc, write_ipc};
/// A worker forgets a partition's state that no request has used for this long (checked when a
/// state request arrives): a partition moved away, a deleted job, or a job whose batches are
/// further apart; if the state is needed again, the driver sends it from the checkpoint.
const IDLE: Duration = Duration::from_secs(600);

/// The streaming state of one partition.
#[derive(Debug)]
pub enum StreamState {
    /// A map job: nothing kept.
    None,
    /// Partial aggregates per group and window.
    Aggregate(AggState),
    /// Rows a `SELECT DISTINCT` has emitted.
    Dedup(DedupState),
}

impl StreamState {
    /// Empty state for `plan`'s shape.
    pub fn new(plan: &JobPlan) -> StreamState {
        match &plan.shape {
            Shape::Map => StreamState::None,
            Shape::Aggregate(aggregate) => {
                let mut state = AggState::new(aggregate, plan.window.as_ref().map(|w| w.kind));
                state.track_updates(plan.output_mode == OutputMode::Update);
                StreamState::Aggregate(state)
            }
            Shape::Dedup { time_column } => StreamState::Dedup(DedupState::new(
                Arc::clone(&plan.task_output_schema),
                *time_column,
            )),
        }
    }

    /// The state as bytes (`None` for a map job).
    pub fn snapshot(&self) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(match self {
            StreamState::None => None,
            StreamState::Aggregate(s) => Some(s.snapshot()?),
            StreamState::Dedup(s) => Some(s.snapshot()?),
        })
    }

    /// Replaces the state with a snapshot's.
    pub fn restore(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match self {
            StreamState::None => Ok(()),
            StreamState::Aggregate(s) => s.restore(bytes),
            StreamState::Dedup(s) => s.restore(bytes),
        }
    }

    /// Rows and approximate bytes held.
    pub fn rows_bytes(&self) -> (u64, u64) {
        match self {
            StreamState::None => (0, 0),
            StreamState::Aggregate(s) => (s.rows(), s.bytes()),
            StreamState::Dedup(s) => (s.rows(), s.bytes()),
        }
    }

    /// Merges a batch's partials (in order) and emits what the watermark (after the batch)
    /// releases; returns the emitted rows and how many state rows the batch created or changed.
    pub fn apply(
        &mut self,
        plan: &JobPlan,
        partials: &[RecordBatch],
        watermark_ms: Option<i64>,
    ) -> anyhow::Result<(Vec<RecordBatch>, u64)> {
        let mut updated = 0u64;
        let mut emitted = Vec::new();
        match self {
            StreamState::None => emitted.extend(partials.iter().cloned()),
            StreamState::Aggregate(state) => {
                for batch in partials {
                    updated += state.merge(batch)?.rows_updated;
                }
                let groups = match plan.output_mode {
                    OutputMode::Append => state.emit_closed(watermark_ms.unwrap_or(i64::MIN))?,
                    OutputMode::Update => state.emit_updated(watermark_ms)?,
                };
                if groups.num_rows() > 0 {
                    emitted.push(groups);
                }
            }
            StreamState::Dedup(state) => {
                for batch in partials {
                    let kept = state.filter(batch)?;
                    updated += kept.num_rows() as u64;
                    if kept.num_rows() > 0 {
                        emitted.push(kept);
                    }
                }
                if let Some(w) = watermark_ms {
                    state.evict(w);
                }
            }
        }
        Ok((emitted, updated))
    }
}

/// The columns of a task's output that pick a row's state partition, or `None` when the job
/// keeps no state.
pub fn partition_columns(plan: &JobPlan) -> Option<Vec<usize>> {
    match &plan.shape {
        Shape::Map => None,
        Shape::Aggregate(aggregate) => Some(
            (0..aggregate.keys)
                .filter(|i| {
                    aggregate
                        .window_keys
                        .is_none_or(|(s, e)| *i != s && *i != e)
                })
                .collect(),
        ),
        Shape::Dedup { .. } => Some((0..plan.task_output_schema.fields().len()).collect()),
    }
}

/// Splits `batch` into `partitions` batches by the hash of `columns` (row order kept within
/// each). Without columns (a windowed aggregation with no other key) every row goes to
/// partition 0.
pub fn split(
    batch: &RecordBatch,
    columns: &[usize],
    partitions: u32,
) -> anyhow::Result<Vec<RecordBatch>> {
    let n = partitions.max(1) as usize;
    if n == 1 {
        return Ok(vec![batch.clone()]);
    }
    let hashes = stable_hashes(batch, columns)?;
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (row, hash) in hashes.iter().enumerate() {
        rows[(*hash as usize) % n].push(u32::try_from(row)?);
    }
    rows.into_iter()
        .map(|r| Ok(take_record_batch(batch, &UInt32Array::from(r))?))
        .collect()
}

/// How one key column's values are read for hashing.
enum KeyColumn<'a> {
    /// Fixed-width values (integers, floats, timestamps, dates, decimals): their bytes.
    Fixed {
        array: &'a ArrayRef,
        values: &'a [u8],
        width: usize,
        offset: usize,
    },
    /// Strings: their UTF-8 bytes.
    Text(&'a ArrayRef),
    /// Anything else: the value's text.
    Other(&'a ArrayRef),
}

/// Per row, murmur2 over the key's values, each as a presence byte (0 for null) and then its
/// little-endian bytes (fixed-width types), its length and UTF-8 bytes (strings), or its text
/// (other types). Without columns every hash is 0.
pub fn stable_hashes(batch: &RecordBatch, columns: &[usize]) -> anyhow::Result<Vec<u32>> {
    let rows = batch.num_rows();
    if columns.is_empty() {
        return Ok(vec![0; rows]);
    }
    let data: Vec<ArrayData> = columns.iter().map(|c| batch.column(*c).to_data()).collect();
    let keys: Vec<KeyColumn<'_>> = columns
        .iter()
        .zip(&data)
        .map(|(c, data)| {
            let array = batch.column(*c);
            match array.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => KeyColumn::Text(array),
                t => match (t.primitive_width(), data.buffers().first()) {
                    (Some(width), Some(buffer)) => KeyColumn::Fixed {
                        array,
                        values: buffer.as_slice(),
                        width,
                        offset: data.offset(),
                    },
                    _ => KeyColumn::Other(array),
                },
            }
        })
        .collect();
    let mut key = Vec::with_capacity(64);
    let mut out = Vec::with_capacity(rows);
    for row in 0..rows {
        key.clear();
        for column in &keys {
            let array = match column {
                KeyColumn::Fixed { array, .. }
                | KeyColumn::Text(array)
                | KeyColumn::Other(array) => array,
            };
            if array.is_null(row) {
                key.push(0);
                continue;
            }
            key.push(1);
            match column {
                KeyColumn::Fixed {
                    values,
                    width,
                    offset,
                    ..
                } => {
                    let at = (offset + row) * width;
                    key.extend_from_slice(
                        values
                            .get(at..at + width)
                            .context("a key value outside its buffer")?,
                    );
                }
                KeyColumn::Text(array) => {
                    let text = match array.data_type() {
                        DataType::Utf8 => array.as_string::<i32>().value(row),
                        DataType::LargeUtf8 => array.as_string::<i64>().value(row),
                        _ => array.as_string_view().value(row),
                    };
                    key.extend_from_slice(&(text.len() as u64).to_le_bytes());
                    key.extend_from_slice(text.as_bytes());
                }
                KeyColumn::Other(array) => {
                    let text = ScalarValue::try_from_array(array, row)?.to_string();
                    key.extend_from_slice(&(text.len() as u64).to_le_bytes());
                    key.extend_from_slice(text.as_bytes());
                }
            }
        }
        out.push(crate::sink::murmur2(&key));
    }
    Ok(out)
}

/// Owners of `count` partitions among `workers` (non-empty, in a stable order), keeping each
/// partition where it was (`previous`) while that keeps the load balanced to within one
/// partition; the rest go to the least loaded workers, the first listed on a tie.
pub fn assign(count: u32, previous: &[Option<String>], workers: &[String]) -> Vec<String> {
    let count = count as usize;
    if workers.is_empty() {
        return Vec::new();
    }
    let n = workers.len();
    let low = count / n;
    let mut extra = count % n;
    let mut load: HashMap<&str, usize> = workers.iter().map(|w| (w.as_str(), 0)).collect();
    let mut owners: Vec<Option<String>> = vec![None; count];
    // Keep previous owners up to the base quota, then into the few extra slots.
    for pass in 0..2 {
        for (p, owner) in owners.iter_mut().enumerate() {
            if owner.is_some() {
                continue;
            }
            let Some(Some(prev)) = previous.get(p) else {
                continue;
            };
            let Some(l) = load.get_mut(prev.as_str()) else {
                continue;
            };
            if *l < low || (pass == 1 && *l == low && extra > 0) {
                if *l == low {
                    extra -= 1;
                }
                *l += 1;
                *owner = Some(prev.clone());
            }
        }
    }
    for owner in owners.iter_mut().filter(|o| o.is_none()) {
        let pick = workers
            .iter()
            .filter(|w| {
                let l = load[w.as_str()];
                l < low || (l == low && extra > 0)
            })
            .min_by_key(|w| load[w.as_str()])
            .unwrap_or(&workers[0]);
        let l = load.entry(pick.as_str()).or_default();
        if *l == low {
            extra = extra.saturating_sub(1);
        }
        *l += 1;
        *owner = Some(pick.clone());
    }
    owners.into_iter().flatten().collect()
}

/// What a state request says besides its rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateHeader {
    /// The job.
    pub job_id: String,
    /// The checkpoint's query id (a job deleted and submitted again gets a new one).
    pub query_id: String,
    /// The job's script (the owner plans it once and caches the plan).
    pub script: String,
    /// The job's default Kafka cluster.
    pub bootstrap: Option<String>,
    /// The batch.
    pub batch_id: u64,
    /// The partition.
    pub partition: u32,
    /// The job's number of partitions.
    pub partitions: u32,
    /// The batch whose state this batch starts from (`None`: empty state).
    pub base: Option<u64>,
    /// The watermark after this batch (what emission and eviction go by).
    pub watermark_ms: Option<i64>,
    /// Every partition of this job the receiving worker owns at this batch (it forgets others).
    pub owned: Vec<u32>,
    /// Whether the base state's snapshot follows the rows.
    pub with_snapshot: bool,
}

/// One partition's share of a batch, sent to its owner.
#[derive(Debug, Clone)]
pub struct StateRequest {
    /// What and where.
    pub header: StateHeader,
    /// The partition's partial rows, in task order.
    pub partials: Vec<RecordBatch>,
    /// The base state, when the owner may not hold it.
    pub snapshot: Option<Arc<Vec<u8>>>,
}

/// Counters of one partition after a batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateMeta {
    /// State rows the batch created or changed.
    pub rows_updated: u64,
    /// State rows held after it.
    pub state_rows: u64,
    /// Approximate bytes held after it.
    pub state_bytes: u64,
    /// Milliseconds merging, emitting and snapshotting.
    pub apply_ms: u64,
}

/// The owner's answer.
#[derive(Debug, Clone)]
pub struct StateReply {
    /// Counters.
    pub meta: StateMeta,
    /// Emitted rows (aggregations: the groups schema; `DISTINCT`: the task's rows).
    pub emitted: Vec<RecordBatch>,
    /// The state after the batch.
    pub snapshot: Vec<u8>,
}

/// `[u32 header length][header JSON][u64 IPC length][IPC][rest]`.
fn frame(header: &[u8], ipc: &[u8], rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(12 + header.len() + ipc.len() + rest.len());
    out.extend_from_slice(&u32::try_from(header.len())?.to_be_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(&(ipc.len() as u64).to_be_bytes());
    out.extend_from_slice(ipc);
    out.extend_from_slice(rest);
    Ok(out)
}

fn unframe(bytes: &[u8]) -> anyhow::Result<(&[u8], &[u8], &[u8])> {
    let (len, rest) = bytes
        .split_first_chunk::<4>()
        .context("shorter than its header length")?;
    let len = usize::try_from(u32::from_be_bytes(*len))?;
    if rest.len() < len {
        bail!("shorter than its header");
    }
    let (header, rest) = rest.split_at(len);
    let (len, rest) = rest
        .split_first_chunk::<8>()
        .context("shorter than its rows' length")?;
    let len = usize::try_from(u64::from_be_bytes(*len))?;
    if rest.len() < len {
        bail!("shorter than its rows");
    }
    let (ipc, rest) = rest.split_at(len);
    Ok((header, ipc, rest))
}

impl StateRequest {
    /// The wire form; `schema` is the partials' (the task output's).
    pub fn encode(&self, schema: &SchemaRef) -> anyhow::Result<Vec<u8>> {
        let mut header = self.header.clone();
        header.with_snapshot = self.snapshot.is_some();
        let snapshot = self.snapshot.as_deref().map_or(&[][..], Vec::as_slice);
        frame(
            &serde_json::to_vec(&header)?,
            &write_ipc(schema, &self.partials)?,
            snapshot,
        )
    }

    /// Reads [`StateRequest::encode`]'s form.
    pub fn decode(bytes: &[u8]) -> anyhow::Result<StateRequest> {
        let (header, ipc, rest) = unframe(bytes).context("a state request")?;
        let header: StateHeader = serde_json::from_slice(header)?;
        let snapshot = header.with_snapshot.then(|| Arc::new(rest.to_vec()));
        Ok(StateRequest {
            header,
            partials: read_ipc(ipc)?,
            snapshot,
        })
    }
}

impl StateReply {
    /// The wire form; `schema` is the emitted rows'.
    pub fn encode(&self, schema: &SchemaRef) -> anyhow::Result<Vec<u8>> {
        frame(
            &serde_json::to_vec(&self.meta)?,
            &write_ipc(schema, &self.emitted)?,
            &self.snapshot,
        )
    }

    /// Reads [`StateReply::encode`]'s form.
    pub fn decode(bytes: &[u8]) -> anyhow::Result<StateReply> {
        let (meta, ipc, rest) = unframe(bytes).context("a state answer")?;
        Ok(StateReply {
            meta: serde_json::from_slice(meta)?,
            emitted: read_ipc(ipc)?,
            snapshot: rest.to_vec(),
        })
    }
}

/// The schema of a job's emitted state rows.
pub fn emitted_schema(plan: &JobPlan) -> SchemaRef {
    match plan.aggregate() {
        Some(aggregate) => Arc::clone(&aggregate.groups_schema),
        None => Arc::clone(&plan.task_output_schema),
    }
}

/// Why a state request was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The owner does not hold the base version and no snapshot came with the request.
    #[error(
        "the worker does not hold partition {partition}'s state after batch {base:?} (it holds {held:?})"
    )]
    Missing {
        /// The partition.
        partition: u32,
        /// The version asked for.
        base: Option<u64>,
        /// The version held.
        held: Option<u64>,
    },
    /// Applying failed.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

#[derive(Debug, Default)]
struct Held {
    version: Option<u64>,
    state: Option<StreamState>,
}

#[derive(Debug)]
struct Slot {
    query_id: String,
    used: Instant,
    held: Arc<Mutex<Held>>,
}

/// The state partitions a worker (or the in-process runner) holds, by job and partition.
#[derive(Debug, Default)]
pub struct StateStore {
    slots: Mutex<HashMap<(String, u32), Slot>>,
}

impl StateStore {
    /// How many state partitions it holds.
    pub fn partitions(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Applies one partition's batch (blocking: call it off the async runtime). Partitions are
    /// applied in parallel; one partition's requests one after the other.
    pub fn apply(&self, plan: &JobPlan, request: &StateRequest) -> Result<StateReply, ApplyError> {
        let started = Instant::now();
        let h = &request.header;
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            // Forget what this worker no longer owns, and anything long unused.
            let owned: HashSet<u32> = h.owned.iter().copied().collect();
            slots.retain(|(job_id, partition), slot| {
                if job_id == &h.job_id {
                    slot.query_id == h.query_id && owned.contains(partition)
                } else {
                    slot.used.elapsed() < IDLE
                }
            });
            let slot = slots
                .entry((h.job_id.clone(), h.partition))
                .or_insert_with(|| Slot {
                    query_id: h.query_id.clone(),
                    used: Instant::now(),
                    held: Arc::default(),
                });
            slot.used = Instant::now();
            Arc::clone(&slot.held)
        };
        let mut held = slot.lock().unwrap_or_else(PoisonError::into_inner);
        let current = held.version.is_some() && held.version == h.base && h.base.is_some();
        if !current {
            let mut state = StreamState::new(plan);
            match (h.base, &request.snapshot) {
                (None, _) => {}
                (Some(_), Some(bytes)) => state.restore(bytes)?,
                (Some(_), None) => {
                    return Err(ApplyError::Missing {
                        partition: h.partition,
                        base: h.base,
                        held: held.version,
                    });
                }
            }
            held.state = Some(state);
        }
        // While the batch is applied the state is of no version: a failure half-way leaves
        // nothing that a later request could take for a valid base.
        held.version = None;
        let Some(state) = held.state.as_mut() else {
            return Err(ApplyError::Failed(anyhow::anyhow!("no state to apply to")));
        };
        let (emitted, rows_updated) = state.apply(plan, &request.partials, h.watermark_ms)?;
        let snapshot = state.snapshot()?.unwrap_or_default();
        let (state_rows, state_bytes) = state.rows_bytes();
        held.version = Some(h.batch_id);
        Ok(StateReply {
            meta: StateMeta {
                rows_updated,
                state_rows,
                state_bytes,
                apply_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            },
            emitted,
            snapshot,
        })
    }

    /// Partitions held, as `(job, partition, version)` (for tests and status).
    pub fn held(&self) -> Vec<(String, u32, Option<u64>)> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<_> = slots
            .iter()
            .map(|((job, p), slot)| {
                let held = slot.held.lock().unwrap_or_else(PoisonError::into_inner);
                (job.clone(), *p, held.version)
            })
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn workers(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_string()).collect()
    }

    fn loads(owners: &[String]) -> Vec<(String, usize)> {
        let mut m: std::collections::BTreeMap<String, usize> = Default::default();
        for o in owners {
            *m.entry(o.clone()).or_default() += 1;
        }
        m.into_iter().collect()
    }

    #[test]
    fn assignment_is_balanced_and_sticky() {
        let two = assign(4, &[], &workers(&["a", "b"]));
        assert_eq!(two, workers(&["a", "b", "a", "b"]));
        // A third worker takes one partition; the others stay where they were.
        let prev: Vec<Option<String>> = two.iter().cloned().map(Some).collect();
        let three = assign(4, &prev, &workers(&["a", "b", "c"]));
        assert_eq!(three, workers(&["a", "b", "a", "c"]));
        // Down to one worker: everything moves to it.
        let prev: Vec<Option<String>> = three.iter().cloned().map(Some).collect();
        let one = assign(4, &prev, &workers(&["c"]));
        assert_eq!(one, workers(&["c", "c", "c", "c"]));
        // More workers than partitions: each partition keeps its owner.
        let prev: Vec<Option<String>> = three.iter().cloned().map(Some).collect();
        let five = assign(4, &prev, &workers(&["a", "b", "c", "d", "e"]));
        assert_eq!(
            loads(&five).iter().map(|(_, n)| *n).max(),
            Some(1),
            "{five:?}"
        );
        assert_eq!(five[3], "c");
        // Balanced to within one, whatever came before.
        for n in 1..=6 {
            let ws: Vec<String> = (0..n).map(|i| format!("w{i}")).collect();
            let prev = vec![Some("w0".to_string()); 7];
            let owners = assign(7, &prev, &ws);
            assert_eq!(owners.len(), 7);
            let l = loads(&owners);
            let max = l.iter().map(|(_, c)| *c).max().unwrap();
            let min = if l.len() < n {
                0
            } else {
                l.iter().map(|(_, c)| *c).min().unwrap()
            };
            assert!(max - min <= 1, "{n} workers: {owners:?}");
        }
    }

    #[test]
    fn split_is_deterministic_and_complete() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let keys: Vec<String> = (0..1000).map(|i| format!("acct-{}", i % 37)).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(keys.clone())),
                Arc::new(Int64Array::from((0..1000).collect::<Vec<i64>>())),
            ],
        )
        .unwrap();
        let parts = split(&batch, &[0], 4).unwrap();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts.iter().map(RecordBatch::num_rows).sum::<usize>(), 1000);
        assert!(parts.iter().filter(|p| p.num_rows() > 0).count() > 1);
        // A key lives in one partition only, and rows keep their order.
        let mut home: HashMap<String, usize> = HashMap::new();
        for (p, part) in parts.iter().enumerate() {
            let k = part
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            let v = part
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            for row in 0..part.num_rows() {
                assert_eq!(*home.entry(k.value(row).to_string()).or_insert(p), p);
                if row > 0 {
                    assert!(v.value(row) > v.value(row - 1));
                }
            }
        }
        assert_eq!(split(&batch, &[0], 4).unwrap(), parts);
        assert_eq!(split(&batch, &[], 4).unwrap()[0].num_rows(), 1000);
    }

    const PINNED_BOTH: [u32; 3] = [1_416_481_579, 3_088_298_508, 3_538_766_560];
    const PINNED_TEXT: [u32; 3] = [2_597_653_261, 375_494_588, 3_783_811_076];

    #[test]
    fn key_hashes_are_pinned() {
        // These values must never change: checkpoints hold state partitioned by them.
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, true),
                Field::new("v", DataType::Int64, true),
            ])),
            vec![
                Arc::new(StringArray::from(vec![Some("acct-1"), None, Some("")])),
                Arc::new(Int64Array::from(vec![Some(7), Some(7), None])),
            ],
        )
        .unwrap();
        let both = stable_hashes(&batch, &[0, 1]).unwrap();
        let text = stable_hashes(&batch, &[0]).unwrap();
        // The same key as a slice at an offset hashes the same.
        let sliced = stable_hashes(&batch.slice(1, 2), &[0, 1]).unwrap();
        assert_eq!(sliced, both[1..]);
        assert_eq!(stable_hashes(&batch, &[]).unwrap(), vec![0, 0, 0]);
        assert_eq!((both, text), (PINNED_BOTH.to_vec(), PINNED_TEXT.to_vec()));
    }

    #[test]
    fn requests_and_replies_round_trip() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let request = StateRequest {
            header: StateHeader {
                job_id: "j".into(),
                query_id: "q".into(),
                script: "s".into(),
                bootstrap: None,
                batch_id: 7,
                partition: 2,
                partitions: 4,
                base: Some(6),
                watermark_ms: Some(1000),
                owned: vec![0, 2],
                with_snapshot: false,
            },
            partials: vec![batch.clone()],
            snapshot: Some(Arc::new(b"snap".to_vec())),
        };
        let back = StateRequest::decode(&request.encode(&schema).unwrap()).unwrap();
        assert_eq!(back.partials, vec![batch.clone()]);
        assert_eq!(back.snapshot.as_deref(), Some(&b"snap".to_vec()));
        assert_eq!(back.header.base, Some(6));
        let reply = StateReply {
            meta: StateMeta {
                rows_updated: 3,
                ..StateMeta::default()
            },
            emitted: vec![batch],
            snapshot: b"after".to_vec(),
        };
        let back = StateReply::decode(&reply.encode(&schema).unwrap()).unwrap();
        assert_eq!(back.meta, reply.meta);
        assert_eq!(back.snapshot, b"after");
        for cut in [0, 3, 10, 20] {
            let bytes = request.encode(&schema).unwrap();
            assert!(StateRequest::decode(&bytes[..cut.min(bytes.len())]).is_err());
        }
    }

    /// A real job's partials: the task query over a JSON-lines file.
    async fn job_and_partials() -> (Arc<crate::task::PreparedJob>, Vec<RecordBatch>) {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let mut text = String::new();
        for i in 0..400i64 {
            text.push_str(&format!(
                "{{\"account\":\"acct-{}\",\"amount\":{},\"ts\":{}}}\n",
                i % 13,
                i % 50,
                1_795_687_200_000 + i * 500
            ));
        }
        std::fs::write(dir.join("part-0.json"), text).unwrap();
        let script = format!(
            "CREATE TABLE tx (account TEXT, amount DOUBLE, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
               WITH (connector = 'files', path = '{}');
             CREATE TABLE out WITH (connector = 'blackhole');
             INSERT INTO out SELECT window_start, account, sum(amount) AS total, count(*) AS n
             FROM TUMBLE(tx, ts, INTERVAL '1' MINUTE) GROUP BY window_start, window_end, account;",
            dir.display()
        );
        let scope = crate::sandbox::JobScope {
            files: crate::sandbox::FilesRoot::confined(dir).unwrap(),
            kafka: crate::sandbox::KafkaScope::any(),
        };
        let job = Arc::new(
            crate::task::PreparedJob::new(&script, None, &scope)
                .await
                .unwrap(),
        );
        let request = crate::task::TaskRequest {
            job_id: "j".into(),
            script,
            bootstrap: None,
            batch_id: 0,
            watermark_ms: None,
            input: crate::task::TaskInput::Files {
                names: vec!["part-0.json".into()],
            },
            kafka_access: Default::default(),
            tables: Default::default(),
        };
        let output = crate::task::run_task(&job, &Arc::default(), &request)
            .await
            .unwrap();
        (job, output.batches)
    }

    fn request(batch_id: u64, partials: Vec<RecordBatch>, watermark: i64) -> StateRequest {
        StateRequest {
            header: StateHeader {
                job_id: "j".into(),
                query_id: "q".into(),
                script: String::new(),
                bootstrap: None,
                batch_id,
                partition: 0,
                partitions: 1,
                base: batch_id.checked_sub(1),
                watermark_ms: Some(watermark),
                owned: vec![0],
                with_snapshot: false,
            },
            partials,
            snapshot: None,
        }
    }

    #[tokio::test]
    async fn an_owner_applies_on_its_version_and_asks_for_the_snapshot_otherwise() {
        let (job, partials) = job_and_partials().await;
        let all =
            datafusion::arrow::compute::concat_batches(&partials[0].schema(), &partials).unwrap();
        assert!(all.num_rows() > 13);
        // Two batches of partials, both with rows: the rerun merges as well as restores.
        let half = all.num_rows() / 2;
        let (first, second) = (
            [all.slice(0, half)],
            [all.slice(half, all.num_rows() - half)],
        );
        let w1 = 1_795_687_200_000 + 60_000;
        let w2 = 1_795_687_200_000 + 240_000;
        let store = StateStore::default();
        let r0 = store
            .apply(&job.plan, &request(0, first.to_vec(), w1))
            .unwrap();
        let r1 = store
            .apply(&job.plan, &request(1, second.to_vec(), w2))
            .unwrap();
        assert!(r1.emitted.iter().map(RecordBatch::num_rows).sum::<usize>() > 0);
        // Batch 1 again (a rerun after a crash): the owner holds version 1, not its base 0.
        match store.apply(&job.plan, &request(1, second.to_vec(), w2)) {
            Err(ApplyError::Missing { base, held, .. }) => {
                assert_eq!((base, held), (Some(0), Some(1)));
            }
            other => panic!("{other:?}"),
        }
        // With batch 0's snapshot it gives exactly the first run's output and state.
        let mut again = request(1, second.to_vec(), w2);
        again.snapshot = Some(Arc::new(r0.snapshot.clone()));
        let r1b = store.apply(&job.plan, &again).unwrap();
        assert_eq!(r1b.emitted, r1.emitted);
        assert_eq!(r1b.snapshot, r1.snapshot);
        // Another worker (a fresh store) that is sent the snapshot agrees too.
        let other = StateStore::default();
        assert!(matches!(
            other.apply(&job.plan, &request(1, second.to_vec(), w2)),
            Err(ApplyError::Missing { held: None, .. })
        ));
        let r1c = other.apply(&job.plan, &again).unwrap();
        assert_eq!(r1c.emitted, r1.emitted);
        assert_eq!(other.held(), vec![("j".to_string(), 0, Some(1))]);
        // A partition the driver no longer lists for this worker is forgotten.
        let mut moved = request(2, Vec::new(), w2);
        moved.header.partition = 1;
        moved.header.owned = vec![1];
        other.apply(&job.plan, &moved).unwrap_err();
        assert_eq!(other.held(), vec![("j".to_string(), 1, None)]);
    }
}
