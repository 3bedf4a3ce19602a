import { describe, expect, it } from "vitest";
import { FrameBatcher, TailBuffer, endReason, tailUrl, type TailRecord } from "./tail";

const rec = (offset: number, partition = 0): TailRecord => ({
  partition,
  offset,
  timestamp_ms: 1_700_000_000_000 + offset,
  key: `k${offset}`,
  value: `v${offset}`,
});

describe("TailBuffer", () => {
  it("keeps the newest records in arrival order", () => {
    const b = new TailBuffer(3);
    b.push([rec(0), rec(1)]);
    expect(b.rows().map((r) => r.offset)).toEqual([0, 1]);
    b.push([rec(2), rec(3), rec(4)]);
    expect(b.rows().map((r) => r.offset)).toEqual([2, 3, 4]);
    expect(b.total).toBe(5);
    expect(b.dropped).toBe(2);
    expect(b.size).toBe(3);
  });

  it("keeps up with 1,000 records a second for a minute, bounded", () => {
    const b = new TailBuffer(500);
    const started = performance.now();
    for (let second = 0; second < 60; second++) {
      // 60 frames a second, ~17 records each.
      for (let frame = 0; frame < 60; frame++) {
        const batch: TailRecord[] = [];
        for (let i = 0; i < 17; i++) batch.push(rec(second * 1020 + frame * 17 + i));
        b.push(batch);
        if (frame % 4 === 0) b.rows();
      }
    }
    const elapsed = performance.now() - started;
    const rows = b.rows();
    expect(rows.length).toBe(500);
    expect(rows[499].offset).toBe(60 * 1020 - 1);
    expect(rows.every((r, i) => i === 0 || r.offset === rows[i - 1].offset + 1)).toBe(true);
    expect(elapsed).toBeLessThan(2000);
  });

  it("clears and refuses a zero capacity", () => {
    const b = new TailBuffer(2);
    b.push([rec(1)]);
    b.clear();
    expect(b.rows()).toEqual([]);
    expect(b.total).toBe(0);
    expect(() => new TailBuffer(0)).toThrow(RangeError);
  });
});

describe("FrameBatcher", () => {
  it("flushes everything added within a frame at once", () => {
    const frames: (() => void)[] = [];
    const flushed: number[][] = [];
    const batcher = new FrameBatcher<number>((items) => flushed.push(items), (cb) => frames.push(cb));
    for (let i = 0; i < 1000; i++) batcher.add(i);
    expect(frames.length).toBe(1);
    frames.shift()!();
    expect(flushed).toEqual([Array.from({ length: 1000 }, (_, i) => i)]);
    batcher.add(1000);
    batcher.drain();
    expect(flushed[1]).toEqual([1000]);
    frames.shift()!(); // the frame scheduled for 1000 finds nothing left
    expect(flushed.length).toBe(2);
    batcher.stop();
    batcher.add(1);
    expect(frames.length).toBe(0);
  });
});

describe("tailUrl and endReason", () => {
  it("encodes seek, partition, filters and bounds", () => {
    expect(tailUrl("ws", "k", "a b", { seek: { from: "latest" } })).toBe("/v1/workspaces/ws/clusters/k/topics/a%20b/records?from=latest");
    const url = tailUrl("ws", "k", "t", {
      seek: { from: "offset", offset: 42, partition: 2 },
      keyContains: "acct",
      valueContains: "x&y",
      maxRecords: 200,
      maxSeconds: 60,
    });
    const q = new URL(url, "http://h").searchParams;
    expect(Object.fromEntries(q)).toEqual({
      from: "offset",
      offset: "42",
      partition: "2",
      key_contains: "acct",
      value_contains: "x&y",
      max_records: "200",
      max_seconds: "60",
    });
    expect(new URL(tailUrl("w", "c", "t", { seek: { from: "timestamp", timestamp_ms: 5 }, partition: 1 }), "http://h").search).toBe(
      "?from=timestamp&timestamp_ms=5&partition=1",
    );
  });
  it("says why a stream ended", () => {
    expect(endReason({ reason: "max_records", records: 200, scanned: 250 })).toContain("record limit");
    expect(endReason({ reason: "error", records: 0, scanned: 0, detail: "leader moved" })).toContain("leader moved");
  });
});
