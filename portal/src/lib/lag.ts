/**
 * A replication link's lag over time, kept by the browser: the API answers the lag now
 * (`GET .../replication-links/{name}/lag`), the link page polls it and charts the samples it
 * has seen (bounded, oldest dropped first).
 */
import type { ReplicationLinkStatus } from "../api/types";

export interface LagSample {
  /** Unix seconds. */
  t: number;
  records: number | null;
  seconds: number | null;
}

/** How many samples a page keeps (10 minutes at one every 2 s). */
export const MAX_SAMPLES = 300;

/** `history` with the sample of `status` read at `nowMs` appended (a new array). */
export function appendLag(history: LagSample[], status: ReplicationLinkStatus, nowMs: number, max = MAX_SAMPLES): LagSample[] {
  const sample: LagSample = {
    t: nowMs / 1000,
    records: status.lag_records ?? null,
    seconds: status.rpo_seconds ?? null,
  };
  const next = history.length >= max ? history.slice(history.length - max + 1) : history.slice();
  next.push(sample);
  return next;
}

/** The chart's columns: times, records behind, seconds behind. */
export function lagSeries(history: LagSample[]): { time: number[]; records: (number | null)[]; seconds: (number | null)[] } {
  return {
    time: history.map((s) => s.t),
    records: history.map((s) => s.records),
    seconds: history.map((s) => s.seconds),
  };
}

/** Seconds as people read a lag: "0 s", "1.4 s", "3 min 20 s"; "—" when unknown. */
export function lagSeconds(s: number | null | undefined): string {
  if (s == null || !Number.isFinite(s)) return "—";
  if (s < 10) return `${Math.round(s * 10) / 10} s`;
  if (s < 120) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}
