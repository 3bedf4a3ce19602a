/**
 * Problem documents (`application/problem+json`, RFC 9457 with hdi's stable `code`): parsing any
 * failed answer into one shape the pages render, field errors, and the SQL position of
 * `invalid_sql`.
 */

/** A problem as the portal shows it: always a title, a status and a code. */
export interface Problem {
  type?: string;
  title: string;
  status: number;
  detail?: string | null;
  code: string;
  field?: string | null;
  line?: number | null;
  column?: number | null;
  sql_code?: string | null;
}

/** An error carrying a problem, thrown by the API helpers and caught by the pages. */
export class ProblemError extends Error {
  readonly problem: Problem;
  constructor(problem: Problem) {
    super(`${problem.title} (${problem.code})${problem.detail ? `: ${problem.detail}` : ""}`);
    this.name = "ProblemError";
    this.problem = problem;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function optionalNumber(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function optionalString(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

/**
 * The problem an answer with status `status` carries. `body` is the parsed JSON (or text, or
 * nothing) of the answer: a body that is not a problem document still gives a problem, with code
 * `http_<status>` and the body's text as detail, so nothing is ever shown as "[object Object]".
 */
export function parseProblem(status: number, body: unknown, statusText = ""): Problem {
  if (isObject(body) && typeof body.code === "string") {
    return {
      type: optionalString(body.type) ?? undefined,
      title: optionalString(body.title) ?? (statusText || `HTTP ${status}`),
      status: optionalNumber(body.status) ?? status,
      detail: optionalString(body.detail),
      code: body.code,
      field: optionalString(body.field),
      line: optionalNumber(body.line),
      column: optionalNumber(body.column),
      sql_code: optionalString(body.sql_code),
    };
  }
  const text = typeof body === "string" ? body.trim() : isObject(body) ? JSON.stringify(body) : "";
  return {
    title: statusText || `HTTP ${status}`,
    status,
    detail: text ? text.slice(0, 500) : null,
    code: `http_${status}`,
  };
}

/** The problem of a request that got no answer at all (control plane down, network cut). */
export function unreachableProblem(error: unknown): Problem {
  return {
    title: "Control plane unreachable",
    status: 0,
    detail: error instanceof Error ? error.message : String(error),
    code: "unreachable",
  };
}

/** Any thrown value as a problem. */
export function toProblem(error: unknown): Problem {
  if (error instanceof ProblemError) return error.problem;
  return unreachableProblem(error);
}

/**
 * The message to show at the form field `name`, if the problem is about it. Field paths are
 * JSON-pointer-like (`node_pools[0].replicas`, `capacity.cpu_millis`); a form names its inputs by
 * the path, or by a prefix of it.
 */
export function fieldError(problem: Problem | null | undefined, name: string): string | null {
  if (!problem?.field) return null;
  const field = problem.field;
  if (field === name || field.startsWith(`${name}.`) || field.startsWith(`${name}[`)) {
    return problem.detail ?? problem.title;
  }
  return null;
}

/** The 1-based line and column of an `invalid_sql` problem, when the executor reported them. */
export function sqlPosition(problem: Problem | null | undefined): { line: number; column: number } | null {
  if (!problem || problem.code !== "invalid_sql" || problem.line == null) return null;
  return { line: problem.line, column: problem.column ?? 1 };
}

/** The character offset in `text` of a 1-based `line`/`column` (clamped to the text). */
export function offsetOf(text: string, line: number, column: number): number {
  const lines = text.split("\n");
  const l = Math.min(Math.max(line, 1), lines.length);
  let offset = 0;
  for (let i = 0; i < l - 1; i++) offset += lines[i].length + 1;
  const c = Math.min(Math.max(column, 1), lines[l - 1].length + 1);
  return offset + c - 1;
}
