import { describe, expect, it } from "vitest";
import { toneOf } from "./Badge";

describe("badge tones", () => {
  it("a running cluster or job is green, a running operation or step is busy", () => {
    expect(toneOf("Running")).toBe("ok");
    expect(toneOf("Running", "operation")).toBe("busy");
    expect(toneOf("Succeeded", "operation")).toBe("ok");
    expect(toneOf("Failed", "operation")).toBe("bad");
    expect(toneOf("Done", "operation")).toBe("ok");
  });

  it("replication link and mirror states", () => {
    expect(toneOf("mirroring")).toBe("ok");
    expect(toneOf("promoting")).toBe("busy");
    expect(toneOf("source_unavailable")).toBe("bad");
    expect(toneOf("paused")).toBe("idle");
    expect(toneOf("something new")).toBe("idle");
  });
});
