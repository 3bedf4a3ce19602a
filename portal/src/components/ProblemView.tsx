/** A problem document as people read it: title, detail, code (and the field at fault). */
import type { Problem } from "../lib/problem";
import { toProblem } from "../lib/problem";

export function ProblemView({ error, context }: { error: unknown; context?: string }) {
  if (!error) return null;
  const problem: Problem = toProblem(error);
  const forbidden = problem.status === 403;
  return (
    <div className="problem" role="alert" data-code={problem.code} data-status={problem.status}>
      <strong className="problem-title">
        {context ? `${context}: ` : ""}
        {forbidden ? "Not permitted — " : ""}
        {problem.title}
      </strong>
      {problem.detail ? <p className="problem-detail">{problem.detail}</p> : null}
      <p className="problem-meta">
        code <code>{problem.code}</code>
        {problem.status ? <> · HTTP {problem.status}</> : null}
        {problem.field ? (
          <>
            {" "}
            · field <code>{problem.field}</code>
          </>
        ) : null}
      </p>
    </div>
  );
}
