//! Streaming state kept across micro-batches (one per state partition, on the worker that owns
//! it; see [`crate::stateful`]): partial aggregates per group and window (merged batch after
//! batch), sessions that merge when they meet, rows already emitted by a `SELECT DISTINCT`, and
//! their snapshots (Arrow IPC) for checkpoints.
//!
//! Everything here is deterministic: merging the same partials in the same order gives the same
//! state, and emission sorts rows by key, so a batch that is run again after a crash emits exactly
//! what its first run emitted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Cursor;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray as _, BooleanArray, Int64Array, TimestampMillisecondArray,
    new_empty_array,
};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;

use crate::plan::{AggFn, AggregatePlan, WindowKind};

/// HyperLogLog precision: 2^12 registers, about 1.6 % standard error.
const HLL_BITS: u32 = 12;
const HLL_REGISTERS: usize = 1 << HLL_BITS;

/// A HyperLogLog sketch for `approx_distinct`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hll {
    registers: Vec<u8>,
}

impl Default for Hll {
    fn default() -> Hll {
        Hll {
            registers: vec![0; HLL_REGISTERS],
        }
    }
}

impl Hll {
    /// Adds a value (by its text form, so equal values of one column hash alike).
    pub fn insert(&mut self, value: &ScalarValue) {
        if value.is_null() {
            return;
        }
        let hash = stable_hash(value.to_string().as_bytes());
        let index = usize::try_from(hash >> (64 - HLL_BITS)).unwrap_or(0);
        let rest = (hash << HLL_BITS) | (1 << (HLL_BITS - 1));
        let rank = u8::try_from(rest.leading_zeros() + 1).unwrap_or(u8::MAX);
        if let Some(register) = self.registers.get_mut(index)
            && rank > *register
        {
            *register = rank;
        }
    }

    /// Merges another sketch in.
    pub fn merge(&mut self, other: &Hll) {
        for (a, b) in self.registers.iter_mut().zip(&other.registers) {
            *a = (*a).max(*b);
        }
    }

    /// The estimated number of distinct values.
    pub fn estimate(&self) -> i64 {
        let m = HLL_REGISTERS as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self
            .registers
            .iter()
            .map(|r| 2f64.powi(-i32::from(*r)))
            .sum();
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|r| **r == 0).count();
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        estimate.round() as i64
    }

    fn from_bytes(bytes: &[u8]) -> anyhow::Result<Hll> {
        if bytes.len() != HLL_REGISTERS {
            bail!(
                "a HyperLogLog snapshot has {} registers, not {HLL_REGISTERS}",
                bytes.len()
            );
        }
        Ok(Hll {
            registers: bytes.to_vec(),
        })
    }
}

/// FNV-1a, finished with splitmix64: stable across builds and platforms (snapshots keep sketches).
fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// One aggregate's running value.
#[derive(Debug, Clone, PartialEq)]
pub enum Acc {
    /// Rows counted.
    Count(i64),
    /// Running sum (null until a non-null value).
    Sum(ScalarValue),
    /// Smallest value.
    Min(ScalarValue),
    /// Largest value.
    Max(ScalarValue),
    /// Sum and count of non-null values.
    Avg(f64, i64),
    /// Distinct-value sketch.
    Distinct(Hll),
}

impl Acc {
    fn new(func: AggFn, data_type: &DataType) -> anyhow::Result<Acc> {
        Ok(match func {
            AggFn::Count => Acc::Count(0),
            AggFn::Sum => Acc::Sum(ScalarValue::try_from(data_type)?),
            AggFn::Min => Acc::Min(ScalarValue::try_from(data_type)?),
            AggFn::Max => Acc::Max(ScalarValue::try_from(data_type)?),
            AggFn::Avg => Acc::Avg(0.0, 0),
            AggFn::ApproxDistinct => Acc::Distinct(Hll::default()),
        })
    }

    /// Folds a task's partial value(s) in.
    fn merge_partial(&mut self, partial: &[ScalarValue]) -> anyhow::Result<()> {
        match (self, partial) {
            (Acc::Count(n), [ScalarValue::Int64(v)]) => *n += v.unwrap_or(0),
            (Acc::Sum(acc), [v]) => {
                if !v.is_null() {
                    *acc = if acc.is_null() {
                        v.clone()
                    } else {
                        add_scalars(acc, v)?
                    };
                }
            }
            (Acc::Min(acc), [v]) => {
                if !v.is_null()
                    && (acc.is_null() || v.partial_cmp(acc) == Some(std::cmp::Ordering::Less))
                {
                    *acc = v.clone();
                }
            }
            (Acc::Max(acc), [v]) => {
                if !v.is_null()
                    && (acc.is_null() || v.partial_cmp(acc) == Some(std::cmp::Ordering::Greater))
                {
                    *acc = v.clone();
                }
            }
            (Acc::Avg(sum, count), [ScalarValue::Float64(s), ScalarValue::Int64(c)]) => {
                *sum += s.unwrap_or(0.0);
                *count += c.unwrap_or(0);
            }
            (Acc::Distinct(hll), [ScalarValue::List(list)]) => {
                let values = list.value(0);
                for i in 0..values.len() {
                    hll.insert(&ScalarValue::try_from_array(&values, i)?);
                }
            }
            (Acc::Distinct(_), [v]) if v.is_null() => {}
            (acc, partial) => bail!("partial {partial:?} does not fit {acc:?}"),
        }
        Ok(())
    }

    /// Folds another accumulator of the same aggregate in (sessions that meet).
    fn merge(&mut self, other: &Acc) -> anyhow::Result<()> {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::Avg(s, c), Acc::Avg(s2, c2)) => {
                *s += s2;
                *c += c2;
            }
            (Acc::Distinct(a), Acc::Distinct(b)) => a.merge(b),
            (acc, Acc::Sum(v) | Acc::Min(v) | Acc::Max(v)) => {
                acc.merge_partial(std::slice::from_ref(v))?
            }
            (a, b) => bail!("cannot merge {b:?} into {a:?}"),
        }
        Ok(())
    }

    /// The aggregate's value.
    fn finish(&self) -> ScalarValue {
        match self {
            Acc::Count(n) => ScalarValue::Int64(Some(*n)),
            Acc::Sum(v) | Acc::Min(v) | Acc::Max(v) => v.clone(),
            Acc::Avg(sum, count) => {
                ScalarValue::Float64((*count > 0).then(|| *sum / *count as f64))
            }
            Acc::Distinct(hll) => ScalarValue::Int64(Some(hll.estimate())),
        }
    }

    fn state_values(&self) -> Vec<ScalarValue> {
        match self {
            Acc::Count(n) => vec![ScalarValue::Int64(Some(*n))],
            Acc::Sum(v) | Acc::Min(v) | Acc::Max(v) => vec![v.clone()],
            Acc::Avg(s, c) => vec![ScalarValue::Float64(Some(*s)), ScalarValue::Int64(Some(*c))],
            Acc::Distinct(hll) => vec![ScalarValue::Binary(Some(hll.registers.clone()))],
        }
    }

    fn from_state(func: AggFn, values: &[ScalarValue]) -> anyhow::Result<Acc> {
        Ok(match (func, values) {
            (AggFn::Count, [ScalarValue::Int64(n)]) => Acc::Count(n.unwrap_or(0)),
            (AggFn::Sum, [v]) => Acc::Sum(v.clone()),
            (AggFn::Min, [v]) => Acc::Min(v.clone()),
            (AggFn::Max, [v]) => Acc::Max(v.clone()),
            (AggFn::Avg, [ScalarValue::Float64(s), ScalarValue::Int64(c)]) => {
                Acc::Avg(s.unwrap_or(0.0), c.unwrap_or(0))
            }
            (AggFn::ApproxDistinct, [ScalarValue::Binary(Some(bytes))]) => {
                Acc::Distinct(Hll::from_bytes(bytes)?)
            }
            (func, values) => bail!("snapshot values {values:?} do not fit {func:?}"),
        })
    }

    fn size(&self) -> usize {
        match self {
            Acc::Sum(v) | Acc::Min(v) | Acc::Max(v) => v.size(),
            Acc::Distinct(_) => HLL_REGISTERS + 16,
            _ => 16,
        }
    }
}

/// `a + b`, with the common numeric types added directly (`ScalarValue::add` goes through arrow's
/// kernels, slow once per group and batch).
fn add_scalars(a: &ScalarValue, b: &ScalarValue) -> anyhow::Result<ScalarValue> {
    Ok(match (a, b) {
        (ScalarValue::Float64(Some(x)), ScalarValue::Float64(Some(y))) => {
            ScalarValue::Float64(Some(x + y))
        }
        (ScalarValue::Float32(Some(x)), ScalarValue::Float32(Some(y))) => {
            ScalarValue::Float32(Some(x + y))
        }
        (ScalarValue::Int64(Some(x)), ScalarValue::Int64(Some(y))) => {
            ScalarValue::Int64(Some(x.checked_add(*y).context("a sum overflows BIGINT")?))
        }
        _ => a.add(b)?,
    })
}

/// A window's bounds in epoch milliseconds; `(0, 0)` when the aggregation has no window.
type Bounds = (i64, i64);

/// The state of a (windowed) aggregation.
#[derive(Debug)]
pub struct AggState {
    plan: AggregatePlan,
    window: Option<WindowKind>,
    /// Positions of the non-window keys among the task's key columns.
    plain_keys: Vec<usize>,
    /// Data types of the finalized aggregates (`__a{i}` of the groups schema).
    agg_types: Vec<DataType>,
    groups: HashMap<Vec<ScalarValue>, BTreeMap<Bounds, Vec<Acc>>>,
    touched: HashSet<(Vec<ScalarValue>, Bounds)>,
    /// Whether to remember which groups a batch changed (update mode needs it).
    track_updates: bool,
}

/// What one merge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Group-window rows created or changed.
    pub rows_updated: u64,
}

impl AggState {
    /// Empty state for `plan`.
    pub fn new(plan: &AggregatePlan, window: Option<WindowKind>) -> AggState {
        let plain_keys = (0..plan.keys)
            .filter(|i| plan.window_keys.is_none_or(|(s, e)| *i != s && *i != e))
            .collect();
        let agg_types = plan.groups_schema.fields()[plan.keys..]
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        AggState {
            plan: plan.clone(),
            window,
            plain_keys,
            agg_types,
            groups: HashMap::new(),
            touched: HashSet::new(),
            track_updates: true,
        }
    }

    /// Whether [`AggState::emit_updated`] will be used (append mode turns this off: no need to
    /// remember which groups each batch changed).
    pub fn track_updates(&mut self, on: bool) {
        self.track_updates = on;
        if !on {
            self.touched.clear();
        }
    }

    fn new_accs(&self) -> anyhow::Result<Vec<Acc>> {
        self.plan
            .aggs
            .iter()
            .zip(&self.agg_types)
            .map(|(f, t)| Acc::new(*f, t))
            .collect()
    }

    /// Merges one task's partial aggregates (the task query's output).
    pub fn merge(&mut self, batch: &RecordBatch) -> anyhow::Result<MergeStats> {
        let mut stats = MergeStats::default();
        let bounds_columns = match self.plan.window_keys {
            Some((s, e)) => Some((
                timestamp_column(batch.column(s))?,
                timestamp_column(batch.column(e))?,
            )),
            None => None,
        };
        for row in 0..batch.num_rows() {
            let key = self
                .plain_keys
                .iter()
                .map(|i| ScalarValue::try_from_array(batch.column(*i), row))
                .collect::<Result<Vec<_>, _>>()?;
            let bounds = match &bounds_columns {
                Some((s, e)) => (s.value(row), e.value(row)),
                None => (0, 0),
            };
            let mut column = self.plan.keys;
            let mut partials = Vec::with_capacity(self.plan.aggs.len());
            for func in &self.plan.aggs {
                let width = func.partial_width();
                let values = (column..column + width)
                    .map(|c| ScalarValue::try_from_array(batch.column(c), row))
                    .collect::<Result<Vec<_>, _>>()?;
                partials.push(values);
                column += width;
            }
            stats.rows_updated += 1;
            if !matches!(self.window, Some(WindowKind::Session { .. })) {
                // Fast path: fold the partials straight into the group's accumulators.
                let windows = match self.groups.get_mut(&key) {
                    Some(windows) => windows,
                    None => self.groups.entry(key.clone()).or_default(),
                };
                let accs = match windows.get_mut(&bounds) {
                    Some(accs) => accs,
                    None => {
                        let fresh = self
                            .plan
                            .aggs
                            .iter()
                            .zip(&self.agg_types)
                            .map(|(f, t)| Acc::new(*f, t))
                            .collect::<anyhow::Result<Vec<_>>>()?;
                        windows.entry(bounds).or_insert(fresh)
                    }
                };
                for (acc, partial) in accs.iter_mut().zip(&partials) {
                    acc.merge_partial(partial)?;
                }
                if self.track_updates {
                    self.touched.insert((key, bounds));
                }
                continue;
            }
            let mut accs = self.new_accs()?;
            for (acc, partial) in accs.iter_mut().zip(&partials) {
                acc.merge_partial(partial)?;
            }
            let bounds = self.insert(key.clone(), bounds, accs)?;
            if self.track_updates {
                self.touched.insert((key, bounds));
            }
        }
        Ok(stats)
    }

    /// Adds accumulators for `key` in window `bounds`, merging sessions that overlap; returns the
    /// bounds the values ended up in.
    fn insert(
        &mut self,
        key: Vec<ScalarValue>,
        bounds: Bounds,
        accs: Vec<Acc>,
    ) -> anyhow::Result<Bounds> {
        let windows = self.groups.entry(key.clone()).or_default();
        if matches!(self.window, Some(WindowKind::Session { .. })) {
            let mut merged_bounds = bounds;
            let mut merged = accs;
            let overlapping: Vec<Bounds> = windows
                .keys()
                .filter(|(s, e)| *s < bounds.1 && bounds.0 < *e)
                .copied()
                .collect();
            for old in overlapping {
                if let Some(old_accs) = windows.remove(&old) {
                    for (a, b) in merged.iter_mut().zip(&old_accs) {
                        a.merge(b)?;
                    }
                    merged_bounds = (merged_bounds.0.min(old.0), merged_bounds.1.max(old.1));
                    self.touched.remove(&(key.clone(), old));
                }
            }
            windows.insert(merged_bounds, merged);
            return Ok(merged_bounds);
        }
        match windows.get_mut(&bounds) {
            Some(existing) => {
                for (a, b) in existing.iter_mut().zip(&accs) {
                    a.merge(b)?;
                }
            }
            None => {
                windows.insert(bounds, accs);
            }
        }
        Ok(bounds)
    }

    /// Append mode: removes and returns (as a [`crate::plan::GROUPS_TABLE`] batch) every window
    /// that ends at or before `watermark_ms`.
    pub fn emit_closed(&mut self, watermark_ms: i64) -> anyhow::Result<RecordBatch> {
        let mut rows = Vec::new();
        for (key, windows) in &mut self.groups {
            let closed: Vec<Bounds> = windows
                .keys()
                .filter(|(_, end)| *end <= watermark_ms)
                .copied()
                .collect();
            for bounds in closed {
                if let Some(accs) = windows.remove(&bounds) {
                    rows.push((key.clone(), bounds, accs));
                }
            }
        }
        self.groups.retain(|_, windows| !windows.is_empty());
        self.touched.clear();
        self.rows_batch(rows)
    }

    /// Update mode: returns every group-window changed since the last call (current values), then
    /// drops windows that end at or before `watermark_ms`.
    pub fn emit_updated(&mut self, watermark_ms: Option<i64>) -> anyhow::Result<RecordBatch> {
        let mut rows = Vec::new();
        for (key, bounds) in self.touched.drain() {
            if let Some(accs) = self.groups.get(&key).and_then(|w| w.get(&bounds)) {
                rows.push((key, bounds, accs.clone()));
            }
        }
        if let (Some(watermark), Some(_)) = (watermark_ms, self.plan.window_keys) {
            for windows in self.groups.values_mut() {
                windows.retain(|(_, end), _| *end > watermark);
            }
            self.groups.retain(|_, windows| !windows.is_empty());
        }
        self.rows_batch(rows)
    }

    /// Groups held.
    pub fn rows(&self) -> u64 {
        self.groups.values().map(|w| w.len() as u64).sum()
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> u64 {
        let mut total = 0usize;
        for (key, windows) in &self.groups {
            let key_size: usize = key.iter().map(ScalarValue::size).sum();
            for accs in windows.values() {
                total += key_size + 16 + accs.iter().map(Acc::size).sum::<usize>();
            }
        }
        total as u64
    }

    /// Rows sorted by key, as a groups-table batch.
    fn rows_batch(
        &self,
        mut rows: Vec<(Vec<ScalarValue>, Bounds, Vec<Acc>)>,
    ) -> anyhow::Result<RecordBatch> {
        rows.sort_by(|a, b| {
            (a.1, &a.0)
                .partial_cmp(&(b.1, &b.0))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let schema = Arc::clone(&self.plan.groups_schema);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (i, field) in schema.fields().iter().enumerate() {
            let values: Vec<ScalarValue> = if i < self.plan.keys {
                match self.plan.window_keys {
                    Some((s, _)) if s == i => rows
                        .iter()
                        .map(|r| ScalarValue::TimestampMillisecond(Some(r.1.0), None))
                        .collect(),
                    Some((_, e)) if e == i => rows
                        .iter()
                        .map(|r| ScalarValue::TimestampMillisecond(Some(r.1.1), None))
                        .collect(),
                    _ => {
                        let position = self
                            .plain_keys
                            .iter()
                            .position(|k| *k == i)
                            .context("key column")?;
                        rows.iter().map(|r| r.0[position].clone()).collect()
                    }
                }
            } else {
                rows.iter()
                    .map(|r| r.2[i - self.plan.keys].finish())
                    .collect()
            };
            columns.push(to_array(values, field.data_type())?);
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    /// The state as Arrow IPC bytes.
    pub fn snapshot(&self) -> anyhow::Result<Vec<u8>> {
        let mut fields: Vec<Field> = Vec::new();
        for (i, field) in self.plan.groups_schema.fields()[..self.plan.keys]
            .iter()
            .enumerate()
        {
            if self.plain_keys.contains(&i) {
                fields.push(field.as_ref().clone().with_nullable(true));
            }
        }
        fields.push(Field::new("__start", DataType::Int64, false));
        fields.push(Field::new("__end", DataType::Int64, false));
        let state_types = self.state_types();
        for (i, t) in state_types.iter().enumerate() {
            fields.push(Field::new(format!("__s{i}"), t.clone(), true));
        }
        let schema = Arc::new(Schema::new(fields));
        let mut columns: Vec<Vec<ScalarValue>> = vec![Vec::new(); schema.fields().len()];
        for (key, windows) in &self.groups {
            for (bounds, accs) in windows {
                let mut c = 0;
                for k in key {
                    columns[c].push(k.clone());
                    c += 1;
                }
                columns[c].push(ScalarValue::Int64(Some(bounds.0)));
                columns[c + 1].push(ScalarValue::Int64(Some(bounds.1)));
                c += 2;
                for acc in accs {
                    for v in acc.state_values() {
                        columns[c].push(v);
                        c += 1;
                    }
                }
            }
        }
        let arrays = columns
            .into_iter()
            .zip(schema.fields())
            .map(|(values, field)| to_array(values, field.data_type()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)?;
        write_ipc(&schema, &[batch])
    }

    /// Replaces the state with a snapshot's.
    pub fn restore(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.groups.clear();
        self.touched.clear();
        let keys = self.plain_keys.len();
        for batch in read_ipc(bytes)? {
            for row in 0..batch.num_rows() {
                let value = |c: usize| ScalarValue::try_from_array(batch.column(c), row);
                let key = (0..keys).map(value).collect::<Result<Vec<_>, _>>()?;
                let start = batch
                    .column(keys)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(row);
                let end = batch
                    .column(keys + 1)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(row);
                let mut c = keys + 2;
                let mut accs = Vec::new();
                for func in &self.plan.aggs {
                    let width = func.partial_width();
                    let values = (c..c + width).map(value).collect::<Result<Vec<_>, _>>()?;
                    accs.push(Acc::from_state(*func, &values)?);
                    c += width;
                }
                self.groups
                    .entry(key)
                    .or_default()
                    .insert((start, end), accs);
            }
        }
        Ok(())
    }

    fn state_types(&self) -> Vec<DataType> {
        let mut types = Vec::new();
        for (func, t) in self.plan.aggs.iter().zip(&self.agg_types) {
            match func {
                AggFn::Count => types.push(DataType::Int64),
                AggFn::Sum | AggFn::Min | AggFn::Max => types.push(t.clone()),
                AggFn::Avg => {
                    types.push(DataType::Float64);
                    types.push(DataType::Int64);
                }
                AggFn::ApproxDistinct => types.push(DataType::Binary),
            }
        }
        types
    }
}

fn timestamp_column(array: &ArrayRef) -> anyhow::Result<&TimestampMillisecondArray> {
    array
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .context("window bounds are not millisecond timestamps")
}

/// An Arrow array of `data_type` from scalars (typed nulls cast as needed).
pub fn to_array(values: Vec<ScalarValue>, data_type: &DataType) -> anyhow::Result<ArrayRef> {
    if values.is_empty() {
        return Ok(new_empty_array(data_type));
    }
    let values = values
        .into_iter()
        .map(|v| {
            if v.data_type() == *data_type {
                Ok(v)
            } else if v.is_null() {
                ScalarValue::try_from(data_type)
            } else {
                v.cast_to(data_type)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ScalarValue::iter_to_array(values)?)
}

/// Arrow IPC file bytes, followed by their SHA-256.
pub fn write_ipc(schema: &SchemaRef, batches: &[RecordBatch]) -> anyhow::Result<Vec<u8>> {
    use sha2::Digest as _;
    let mut out = Vec::new();
    {
        let mut writer = FileWriter::try_new(&mut out, schema)?;
        for batch in batches {
            writer.write(batch)?;
        }
        writer.finish()?;
    }
    let digest = sha2::Sha256::digest(&out);
    out.extend_from_slice(&digest);
    Ok(out)
}

/// Batches from [`write_ipc`]'s bytes. The digest is checked first: arrow's IPC reader trusts the
/// lengths inside its input and can panic, or abort on a huge allocation, on damaged bytes (found
/// by `tests/fuzz.rs`); a panic that still happens is caught.
pub fn read_ipc(bytes: &[u8]) -> anyhow::Result<Vec<RecordBatch>> {
    use sha2::Digest as _;
    let Some(split) = bytes.len().checked_sub(32) else {
        bail!("Arrow IPC data shorter than its digest");
    };
    let (data, digest) = bytes.split_at(split);
    if sha2::Sha256::digest(data)[..] != *digest {
        bail!("damaged Arrow IPC data (digest mismatch)");
    }
    let read = std::panic::catch_unwind(|| -> anyhow::Result<Vec<RecordBatch>> {
        let reader = FileReader::try_new(Cursor::new(data), None)?;
        let batches = reader.collect::<Result<Vec<_>, _>>()?;
        for batch in &batches {
            for column in batch.columns() {
                column.to_data().validate_full()?;
            }
        }
        Ok(batches)
    });
    match read {
        Ok(result) => result,
        Err(_) => bail!("damaged Arrow IPC data"),
    }
}

/// The state of a `SELECT DISTINCT`: rows already emitted, with their event time (evicted when
/// the watermark passes it).
#[derive(Debug)]
pub struct DedupState {
    schema: SchemaRef,
    time_column: Option<usize>,
    seen: HashMap<Vec<ScalarValue>, i64>,
}

impl DedupState {
    /// Empty state for rows of `schema`.
    pub fn new(schema: SchemaRef, time_column: Option<usize>) -> DedupState {
        DedupState {
            schema,
            time_column,
            seen: HashMap::new(),
        }
    }

    /// Keeps the rows of `batch` not seen before (and remembers them).
    pub fn filter(&mut self, batch: &RecordBatch) -> anyhow::Result<RecordBatch> {
        let mut keep = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let key = (0..batch.num_columns())
                .map(|c| ScalarValue::try_from_array(batch.column(c), row))
                .collect::<Result<Vec<_>, _>>()?;
            let time = match self.time_column {
                Some(c) => event_millis(&key[c]),
                None => i64::MAX,
            };
            keep.push(self.seen.insert(key, time).is_none());
        }
        Ok(filter_record_batch(batch, &BooleanArray::from(keep))?)
    }

    /// Forgets rows whose event time is below the watermark.
    pub fn evict(&mut self, watermark_ms: i64) {
        self.seen.retain(|_, time| *time >= watermark_ms);
    }

    /// Rows held.
    pub fn rows(&self) -> u64 {
        self.seen.len() as u64
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> u64 {
        self.seen
            .keys()
            .map(|k| k.iter().map(ScalarValue::size).sum::<usize>() + 8)
            .sum::<usize>() as u64
    }

    /// The state as Arrow IPC bytes.
    pub fn snapshot(&self) -> anyhow::Result<Vec<u8>> {
        let mut columns: Vec<Vec<ScalarValue>> = vec![Vec::new(); self.schema.fields().len()];
        let mut times = Vec::new();
        for (key, time) in &self.seen {
            for (c, v) in key.iter().enumerate() {
                columns[c].push(v.clone());
            }
            times.push(*time);
        }
        let mut arrays = columns
            .into_iter()
            .zip(self.schema.fields())
            .map(|(values, field)| to_array(values, field.data_type()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        arrays.push(Arc::new(Int64Array::from(times)));
        let mut fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        fields.push(Field::new("__time", DataType::Int64, false));
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)?;
        write_ipc(&schema, &[batch])
    }

    /// Replaces the state with a snapshot's.
    pub fn restore(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.seen.clear();
        let width = self.schema.fields().len();
        for batch in read_ipc(bytes)? {
            let times = batch
                .column(width)
                .as_any()
                .downcast_ref::<Int64Array>()
                .context("dedup snapshot times")?;
            for row in 0..batch.num_rows() {
                let key = (0..width)
                    .map(|c| ScalarValue::try_from_array(batch.column(c), row))
                    .collect::<Result<Vec<_>, _>>()?;
                self.seen.insert(key, times.value(row));
            }
        }
        Ok(())
    }
}

/// Milliseconds of a timestamp scalar (`i64::MAX` for anything else, never evicted).
fn event_millis(value: &ScalarValue) -> i64 {
    match value {
        ScalarValue::TimestampMillisecond(Some(v), _) => *v,
        ScalarValue::TimestampSecond(Some(v), _) => v.saturating_mul(1000),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v / 1000,
        ScalarValue::TimestampNanosecond(Some(v), _) => v / 1_000_000,
        _ => i64::MAX,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use datafusion::arrow::array::Float64Array;
    use datafusion::arrow::datatypes::TimeUnit;

    fn plan(window: bool) -> AggregatePlan {
        let mut fields = Vec::new();
        if window {
            fields.push(Field::new(
                "__k0",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ));
            fields.push(Field::new(
                "__k1",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ));
        }
        fields.push(Field::new("__k2", DataType::Utf8, true));
        fields.push(Field::new("__a0", DataType::Float64, true));
        fields.push(Field::new("__a1", DataType::Int64, true));
        AggregatePlan {
            keys: if window { 3 } else { 1 },
            window_keys: window.then_some((0, 1)),
            aggs: vec![AggFn::Sum, AggFn::Count],
            final_sql: String::new(),
            groups_schema: Arc::new(Schema::new(fields)),
        }
    }

    fn partial(rows: &[(i64, i64, &str, f64, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "__k0",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new(
                "__k1",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("__k2", DataType::Utf8, true),
            Field::new("__p0_0", DataType::Float64, true),
            Field::new("__p1_0", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(datafusion::arrow::array::StringArray::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
                Arc::new(Float64Array::from(
                    rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.4).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    #[test]
    fn windows_merge_across_batches_and_close_at_the_watermark() {
        let mut state = AggState::new(&plan(true), Some(WindowKind::Tumble { size_ms: 60_000 }));
        state
            .merge(&partial(&[
                (0, 60_000, "a", 10.0, 1),
                (60_000, 120_000, "a", 5.0, 1),
            ]))
            .unwrap();
        state
            .merge(&partial(&[
                (0, 60_000, "a", 2.5, 2),
                (0, 60_000, "b", 1.0, 1),
            ]))
            .unwrap();
        assert_eq!(state.rows(), 3);
        let out = state.emit_closed(59_999).unwrap();
        assert_eq!(out.num_rows(), 0);
        let out = state.emit_closed(60_000).unwrap();
        assert_eq!(out.num_rows(), 2);
        let sums = out
            .column(3)
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        let counts = out
            .column(4)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        assert_eq!((sums.value(0), counts.value(0)), (12.5, 3));
        assert_eq!((sums.value(1), counts.value(1)), (1.0, 1));
        assert_eq!(state.rows(), 1);
    }

    #[test]
    fn a_snapshot_restores_the_same_state() {
        let mut state = AggState::new(&plan(true), Some(WindowKind::Tumble { size_ms: 60_000 }));
        state
            .merge(&partial(&[
                (0, 60_000, "a", 10.0, 1),
                (60_000, 120_000, "b", 5.0, 1),
            ]))
            .unwrap();
        let bytes = state.snapshot().unwrap();
        let mut restored = AggState::new(&plan(true), Some(WindowKind::Tumble { size_ms: 60_000 }));
        restored.restore(&bytes).unwrap();
        assert_eq!(restored.groups, state.groups);
    }

    #[test]
    fn sessions_merge_when_they_meet() {
        let mut state = AggState::new(&plan(true), Some(WindowKind::Session { gap_ms: 10 }));
        state
            .merge(&partial(&[(0, 10, "a", 1.0, 1), (30, 40, "a", 1.0, 1)]))
            .unwrap();
        assert_eq!(state.rows(), 2);
        // An event at 8 bridges [0,10) and... not [30,40): [8,18) overlaps only the first.
        state.merge(&partial(&[(8, 18, "a", 1.0, 1)])).unwrap();
        assert_eq!(state.rows(), 2);
        // An event at 25 ([25,35)) touches [0,18)? no; it overlaps [30,40).
        state.merge(&partial(&[(17, 27, "a", 1.0, 1)])).unwrap();
        // [17,27) overlaps [0,18) → [0,27); then [25,35) joins it with [30,40).
        state.merge(&partial(&[(25, 35, "a", 1.0, 1)])).unwrap();
        assert_eq!(state.rows(), 1);
        let out = state.emit_closed(40).unwrap();
        assert_eq!(out.num_rows(), 1);
        let counts = out
            .column(4)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        assert_eq!(counts.value(0), 5);
    }

    #[test]
    fn hyperloglog_is_close() {
        let mut hll = Hll::default();
        for i in 0..100_000 {
            hll.insert(&ScalarValue::Utf8(Some(format!("acct-{i}"))));
        }
        let estimate = hll.estimate();
        assert!((95_000..105_000).contains(&estimate), "{estimate}");
        let mut small = Hll::default();
        for i in 0..100 {
            small.insert(&ScalarValue::Int64(Some(i % 37)));
        }
        assert_eq!(small.estimate(), 37);
    }
}
