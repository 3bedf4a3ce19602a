import { describe, expect, it } from "vitest";
import { fieldError, offsetOf, parseProblem, sqlPosition, toProblem, ProblemError } from "./problem";

describe("parseProblem", () => {
  it("reads a problem document with its code, field and SQL position", () => {
    const p = parseProblem(400, {
      type: "about:blank",
      title: "Invalid SQL",
      status: 400,
      detail: "unknown column amout",
      code: "invalid_sql",
      field: "sql",
      line: 3,
      column: 8,
      sql_code: "unknown_column",
    });
    expect(p).toMatchObject({ title: "Invalid SQL", status: 400, code: "invalid_sql", field: "sql", line: 3, column: 8 });
    expect(sqlPosition(p)).toEqual({ line: 3, column: 8 });
  });

  it("gives a problem for bodies that are not problem documents", () => {
    expect(parseProblem(502, "<html>Bad gateway</html>", "Bad Gateway")).toEqual({
      title: "Bad Gateway",
      status: 502,
      detail: "<html>Bad gateway</html>",
      code: "http_502",
    });
    expect(parseProblem(500, undefined)).toMatchObject({ title: "HTTP 500", code: "http_500", detail: null });
    expect(parseProblem(500, { message: "x" }).detail).toBe('{"message":"x"}');
  });

  it("never takes a non-string code as one", () => {
    expect(parseProblem(409, { code: 7, title: "t" }).code).toBe("http_409");
  });

  it("turns thrown values into problems", () => {
    const problem = parseProblem(403, { title: "Forbidden", code: "forbidden", status: 403 });
    expect(toProblem(new ProblemError(problem))).toBe(problem);
    expect(toProblem(new TypeError("Failed to fetch"))).toMatchObject({ code: "unreachable", status: 0, detail: "Failed to fetch" });
  });
});

describe("fieldError", () => {
  const p = parseProblem(400, { title: "Invalid field", code: "invalid_field", field: "node_pools[0].replicas", detail: "at most 9" });
  it("matches the field and its prefixes only", () => {
    expect(fieldError(p, "node_pools[0].replicas")).toBe("at most 9");
    expect(fieldError(p, "node_pools")).toBe("at most 9");
    expect(fieldError(p, "node_pools[0].size")).toBeNull();
    expect(fieldError(p, "name")).toBeNull();
    expect(fieldError(null, "name")).toBeNull();
  });
});

describe("sqlPosition and offsetOf", () => {
  it("is null for other problems or without a line", () => {
    expect(sqlPosition(parseProblem(400, { code: "invalid_field", title: "x", line: 2 }))).toBeNull();
    expect(sqlPosition(parseProblem(400, { code: "invalid_sql", title: "x" }))).toBeNull();
    expect(sqlPosition(parseProblem(400, { code: "invalid_sql", title: "x", line: 2 }))).toEqual({ line: 2, column: 1 });
  });
  it("maps line and column to an offset, clamped", () => {
    const text = "SELECT a\nFROM t\nWHERE b";
    expect(offsetOf(text, 1, 1)).toBe(0);
    expect(offsetOf(text, 2, 6)).toBe(14);
    expect(text[offsetOf(text, 3, 7)]).toBe("b");
    expect(offsetOf(text, 99, 99)).toBe(text.length);
  });
});
