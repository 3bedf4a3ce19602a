/**
 * Job progress documents (the executor's Spark-like `StreamingQueryProgress`) turned into chart
 * series: input against processing rate, batch duration by phase, watermark delay, state rows.
 * Documents are merged by `batch_id` across polls and bounded.
 */

/** The fields of a progress document the charts read (missing ones read as 0 / absent). */
export interface ProgressDoc {
  batch_id: number;
  timestamp: string;
  num_input_rows?: number;
  input_rows_per_second?: number;
  processed_rows_per_second?: number;
  duration_ms?: Partial<Record<string, number>>;
  event_time?: { min?: string | null; max?: string | null; watermark?: string | null };
  state_operators?: { num_rows_total?: number; num_rows_updated?: number; num_rows_dropped_by_watermark?: number }[];
  sink?: { description?: string; num_output_rows?: number };
}

/** The phases charted in "batch duration", in the order they run. */
export const PHASES = [
  "latest_offset",
  "wal_commit",
  "execution",
  "state_merge",
  "query_planning",
  "add_batch",
  "commit",
] as const;

/** Chart series: x is the batch's start time in Unix seconds. */
export interface ProgressSeries {
  time: number[];
  inputRate: number[];
  processedRate: number[];
  phases: Record<(typeof PHASES)[number], number[]>;
  total: number[];
  /** Seconds between the batch's largest event time and its watermark; null when unknown. */
  watermarkDelay: (number | null)[];
  stateRows: number[];
  outputRows: number[];
}

function num(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) ? value : 0;
}

function seconds(time: string | null | undefined): number | null {
  if (!time) return null;
  const ms = Date.parse(time);
  return Number.isNaN(ms) ? null : ms / 1000;
}

/** `previous` and `next` merged by batch id (the later copy wins), oldest first, at most `limit`. */
export function mergeProgress(previous: readonly ProgressDoc[], next: readonly ProgressDoc[], limit = 300): ProgressDoc[] {
  const byBatch = new Map<number, ProgressDoc>();
  for (const doc of previous) byBatch.set(doc.batch_id, doc);
  for (const doc of next) byBatch.set(doc.batch_id, doc);
  const merged = [...byBatch.values()].sort((a, b) => a.batch_id - b.batch_id);
  return merged.slice(Math.max(0, merged.length - limit));
}

/** The chart series of `docs` (oldest first); documents without a readable time are skipped. */
export function progressSeries(docs: readonly ProgressDoc[]): ProgressSeries {
  const series: ProgressSeries = {
    time: [],
    inputRate: [],
    processedRate: [],
    phases: Object.fromEntries(PHASES.map((p) => [p, [] as number[]])) as ProgressSeries["phases"],
    total: [],
    watermarkDelay: [],
    stateRows: [],
    outputRows: [],
  };
  let lastTime = -Infinity;
  for (const doc of docs) {
    const t = seconds(doc.timestamp);
    // uPlot needs strictly increasing x values.
    if (t === null || t <= lastTime) continue;
    lastTime = t;
    series.time.push(t);
    series.inputRate.push(num(doc.input_rows_per_second));
    series.processedRate.push(num(doc.processed_rows_per_second));
    for (const phase of PHASES) series.phases[phase].push(num(doc.duration_ms?.[phase]));
    series.total.push(num(doc.duration_ms?.trigger_execution));
    const max = seconds(doc.event_time?.max);
    const watermark = seconds(doc.event_time?.watermark);
    series.watermarkDelay.push(max !== null && watermark !== null ? Math.max(0, max - watermark) : null);
    series.stateRows.push((doc.state_operators ?? []).reduce((sum, op) => sum + num(op.num_rows_total), 0));
    series.outputRows.push(num(doc.sink?.num_output_rows));
  }
  return series;
}
