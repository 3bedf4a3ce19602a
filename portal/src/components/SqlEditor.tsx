/**
 * A SQL textarea with line numbers; an `invalid_sql` problem's line is marked in the gutter, the
 * line is shown again with a caret under the column, and the cursor is put there.
 */
import { useEffect, useRef } from "react";
import { offsetOf, sqlPosition, type Problem } from "../lib/problem";

export function SqlEditor({
  id,
  value,
  onChange,
  problem,
}: {
  id: string;
  value: string;
  onChange: (value: string) => void;
  problem: Problem | null;
}) {
  const area = useRef<HTMLTextAreaElement>(null);
  const gutter = useRef<HTMLOListElement>(null);
  const position = sqlPosition(problem);
  const lines = value.split("\n");

  useEffect(() => {
    if (!position || !area.current) return;
    const at = offsetOf(value, position.line, position.column);
    area.current.focus();
    area.current.setSelectionRange(at, Math.min(at + 1, value.length));
    // Only when a new problem arrives, not on every keystroke.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [problem]);

  const errorLine = position ? Math.min(position.line, lines.length) : null;
  return (
    <div className="sql-editor">
      <div className="sql-box">
        <ol className="gutter" ref={gutter} aria-hidden="true">
          {lines.map((_, i) => (
            <li key={i} className={errorLine === i + 1 ? "error-line" : undefined} data-error-line={errorLine === i + 1 ? "" : undefined}>
              {i + 1}
            </li>
          ))}
        </ol>
        <textarea
          id={id}
          ref={area}
          className="sql"
          spellCheck={false}
          rows={Math.max(8, lines.length + 1)}
          value={value}
          onChange={(e) => onChange(e.target.value)}
          onScroll={(e) => {
            if (gutter.current) gutter.current.scrollTop = e.currentTarget.scrollTop;
          }}
          aria-invalid={position ? true : undefined}
          aria-describedby={position ? `${id}-error` : undefined}
        />
      </div>
      {position ? (
        <div className="sql-error" id={`${id}-error`} data-testid="sql-error" data-line={position.line} data-column={position.column}>
          <strong>
            Line {position.line}, column {position.column}
            {problem?.sql_code ? ` (${problem.sql_code})` : ""}: {problem?.detail ?? problem?.title}
          </strong>
          <pre aria-hidden="true">
            {lines[(errorLine ?? 1) - 1]}
            {"\n"}
            {" ".repeat(Math.max(0, position.column - 1))}^
          </pre>
        </div>
      ) : null}
    </div>
  );
}
