import { describe, expect, it } from "vitest";
import { REQUESTED_BY, withRequestedBy } from "./client";

describe("withRequestedBy", () => {
  it("marks unsafe requests for the server's CSRF check, and only those", () => {
    for (const method of ["POST", "PUT", "PATCH", "DELETE", "delete"]) {
      expect(withRequestedBy(method, new Headers()).get(REQUESTED_BY[0])).toBe("portal");
    }
    for (const method of ["GET", "HEAD", "OPTIONS"]) {
      expect(withRequestedBy(method, new Headers()).has(REQUESTED_BY[0])).toBe(false);
    }
  });
});
