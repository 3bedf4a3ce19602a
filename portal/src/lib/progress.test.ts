import { describe, expect, it } from "vitest";
import { mergeProgress, progressSeries, type ProgressDoc } from "./progress";

const doc = (batch: number, extra: Partial<ProgressDoc> = {}): ProgressDoc => ({
  batch_id: batch,
  timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, batch)).toISOString(),
  input_rows_per_second: batch * 10,
  processed_rows_per_second: batch * 20,
  duration_ms: { trigger_execution: 100 + batch, execution: 60, add_batch: 20, commit: 5 },
  event_time: {
    max: new Date(Date.UTC(2026, 0, 1, 0, 0, batch)).toISOString(),
    watermark: new Date(Date.UTC(2026, 0, 1, 0, 0, batch - 5)).toISOString(),
  },
  state_operators: [{ num_rows_total: batch * 3 }],
  ...extra,
});

describe("mergeProgress", () => {
  it("merges polls by batch id, newest copy winning, bounded", () => {
    const first = [doc(1), doc(2), doc(3)];
    const second = [doc(3, { input_rows_per_second: 999 }), doc(4)];
    const merged = mergeProgress(first, second);
    expect(merged.map((d) => d.batch_id)).toEqual([1, 2, 3, 4]);
    expect(merged[2].input_rows_per_second).toBe(999);
    expect(mergeProgress(merged, [doc(5)], 3).map((d) => d.batch_id)).toEqual([3, 4, 5]);
  });
});

describe("progressSeries", () => {
  it("gives the Spark-style series", () => {
    const s = progressSeries([doc(1), doc(2)]);
    expect(s.time).toEqual([Date.UTC(2026, 0, 1, 0, 0, 1) / 1000, Date.UTC(2026, 0, 1, 0, 0, 2) / 1000]);
    expect(s.inputRate).toEqual([10, 20]);
    expect(s.processedRate).toEqual([20, 40]);
    expect(s.total).toEqual([101, 102]);
    expect(s.phases.execution).toEqual([60, 60]);
    expect(s.phases.wal_commit).toEqual([0, 0]);
    expect(s.watermarkDelay).toEqual([5, 5]);
    expect(s.stateRows).toEqual([3, 6]);
  });

  it("skips documents without a time or out of order, and reads missing figures as 0", () => {
    const s = progressSeries([doc(2), doc(1), { batch_id: 3, timestamp: "not a time" }, { batch_id: 4, timestamp: "2026-01-01T00:01:00Z" }]);
    expect(s.time.length).toBe(2);
    expect(s.inputRate).toEqual([20, 0]);
    expect(s.watermarkDelay).toEqual([5, null]);
    expect(s.stateRows).toEqual([6, 0]);
  });
});
