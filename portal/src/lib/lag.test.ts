import { describe, expect, it } from "vitest";
import type { ReplicationLinkStatus } from "../api/types";
import { appendLag, lagSeconds, lagSeries } from "./lag";

const status = (records: number | null, rpo: number | null): ReplicationLinkStatus => ({
  observed: true,
  defined: true,
  partitions_reported: true,
  lag_records: records,
  rpo_seconds: rpo,
});

describe("replication lag history", () => {
  it("appends samples in order and keeps at most max, dropping the oldest", () => {
    let h = appendLag([], status(10, 1.5), 1000);
    h = appendLag(h, status(0, 0), 3000);
    expect(lagSeries(h)).toEqual({ time: [1, 3], records: [10, 0], seconds: [1.5, 0] });
    for (let i = 0; i < 10; i++) h = appendLag(h, status(i, null), 5000 + i * 1000, 4);
    expect(h).toHaveLength(4);
    expect(h.map((s) => s.records)).toEqual([6, 7, 8, 9]);
  });

  it("keeps unknown lag as a gap, not a zero", () => {
    const h = appendLag([], { observed: false, defined: false, partitions_reported: false }, 0);
    expect(h[0]).toEqual({ t: 0, records: null, seconds: null });
  });

  it("formats seconds", () => {
    expect(lagSeconds(null)).toBe("—");
    expect(lagSeconds(0)).toBe("0 s");
    expect(lagSeconds(1.44)).toBe("1.4 s");
    expect(lagSeconds(42.4)).toBe("42 s");
    expect(lagSeconds(200)).toBe("3 min 20 s");
  });
});
