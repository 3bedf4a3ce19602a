/**
 * The live tail's client state: a bounded buffer of the newest records, a batcher that hands the
 * records of one animation frame to React at once (so 1,000 records/s cost ~60 renders/s, not
 * 1,000), and the URL of the server-sent-event stream for a seek position and filters.
 */

/** One record of `event: record`. */
export interface TailRecord {
  partition: number;
  offset: number;
  timestamp_ms: number;
  key: string | null;
  value: string | null;
  headers?: { key: string; value: string | null }[];
}

/** `event: progress`. */
export interface TailProgress {
  scanned: number;
  matched: number;
}

/** `event: end`: why the stream stopped. */
export interface TailEnd {
  reason: "max_records" | "max_seconds" | "end_of_partitions" | "error" | string;
  records: number;
  scanned: number;
  detail?: string | null;
}

/** The newest `capacity` records, oldest first; older ones are counted, not kept. */
export class TailBuffer {
  private ring: (TailRecord | undefined)[];
  private start = 0;
  private length = 0;
  private pushed = 0;

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError("capacity must be at least 1");
    this.ring = new Array<TailRecord | undefined>(capacity);
  }

  /** Appends records in arrival order, dropping the oldest beyond the capacity. */
  push(records: readonly TailRecord[]): void {
    for (const record of records) {
      const end = (this.start + this.length) % this.capacity;
      this.ring[end] = record;
      if (this.length < this.capacity) this.length++;
      else this.start = (this.start + 1) % this.capacity;
    }
    this.pushed += records.length;
  }

  /** Records ever pushed. */
  get total(): number {
    return this.pushed;
  }

  /** Records pushed but no longer kept. */
  get dropped(): number {
    return this.pushed - this.length;
  }

  /** How many are kept. */
  get size(): number {
    return this.length;
  }

  /** The kept records, oldest first (a new array). */
  rows(): TailRecord[] {
    const out: TailRecord[] = new Array<TailRecord>(this.length);
    for (let i = 0; i < this.length; i++) {
      out[i] = this.ring[(this.start + i) % this.capacity] as TailRecord;
    }
    return out;
  }

  /** Forgets everything. */
  clear(): void {
    this.ring = new Array<TailRecord | undefined>(this.capacity);
    this.start = 0;
    this.length = 0;
    this.pushed = 0;
  }
}

/** Schedules a callback once (requestAnimationFrame in the browser). */
export type Scheduler = (callback: () => void) => unknown;

/** Collects items and flushes them together, at most once per scheduled frame. */
export class FrameBatcher<T> {
  private pending: T[] = [];
  private scheduled = false;
  private stopped = false;

  constructor(
    private readonly flush: (items: T[]) => void,
    private readonly schedule: Scheduler = (cb) => requestAnimationFrame(cb),
  ) {}

  add(item: T): void {
    if (this.stopped) return;
    this.pending.push(item);
    if (!this.scheduled) {
      this.scheduled = true;
      this.schedule(() => this.run());
    }
  }

  /** Flushes what is pending now (e.g. before the stream's end is shown). */
  drain(): void {
    this.run();
  }

  /** Drops what is pending and ignores later items. */
  stop(): void {
    this.stopped = true;
    this.pending = [];
  }

  private run(): void {
    this.scheduled = false;
    if (this.pending.length === 0 || this.stopped) return;
    const items = this.pending;
    this.pending = [];
    this.flush(items);
  }
}

/** Where the tail starts. */
export type Seek =
  | { from: "latest" }
  | { from: "earliest" }
  | { from: "offset"; offset: number; partition?: number }
  | { from: "timestamp"; timestamp_ms: number };

/** Options of one tail stream. */
export interface TailOptions {
  seek: Seek;
  partition?: number | null;
  keyContains?: string;
  valueContains?: string;
  maxRecords?: number;
  maxSeconds?: number;
}

/** The records endpoint's URL (relative) for `options`. */
export function tailUrl(ws: string, cluster: string, topic: string, options: TailOptions): string {
  const q = new URLSearchParams();
  q.set("from", options.seek.from);
  if (options.seek.from === "offset") q.set("offset", String(options.seek.offset));
  if (options.seek.from === "timestamp") q.set("timestamp_ms", String(options.seek.timestamp_ms));
  const partition =
    options.seek.from === "offset" && options.seek.partition != null ? options.seek.partition : options.partition;
  if (partition != null) q.set("partition", String(partition));
  if (options.keyContains) q.set("key_contains", options.keyContains);
  if (options.valueContains) q.set("value_contains", options.valueContains);
  if (options.maxRecords != null) q.set("max_records", String(options.maxRecords));
  if (options.maxSeconds != null) q.set("max_seconds", String(options.maxSeconds));
  const e = encodeURIComponent;
  return `/v1/workspaces/${e(ws)}/clusters/${e(cluster)}/topics/${e(topic)}/records?${q.toString()}`;
}

/** A sentence for why the stream ended. */
export function endReason(end: TailEnd): string {
  const counts = `${end.records} records shown of ${end.scanned} scanned`;
  switch (end.reason) {
    case "max_records":
      return `Stopped: the record limit was reached (${counts}).`;
    case "max_seconds":
      return `Stopped: the time limit was reached (${counts}).`;
    case "end_of_partitions":
      return `Stopped: reached the end of the partitions (${counts}).`;
    case "error":
      return `Stopped by an error${end.detail ? `: ${end.detail}` : ""} (${counts}).`;
    default:
      return `Stopped: ${end.reason}${end.detail ? ` (${end.detail})` : ""} (${counts}).`;
  }
}
