/** A labelled form control with its server-side error beneath it. */
import { useId, type ReactNode } from "react";
import { fieldError, type Problem } from "../lib/problem";

export function Field({
  label,
  name,
  problem,
  hint,
  children,
}: {
  label: string;
  /** The API field this control sets (as problem documents name it). */
  name: string;
  problem?: Problem | null;
  hint?: string;
  children: (props: { id: string; name: string; "aria-invalid"?: boolean; "aria-describedby"?: string }) => ReactNode;
}) {
  const id = useId();
  const error = fieldError(problem, name);
  const describedBy = error ? `${id}-error` : hint ? `${id}-hint` : undefined;
  return (
    <div className={error ? "field field-invalid" : "field"}>
      <label htmlFor={id}>{label}</label>
      {children({ id, name, "aria-invalid": error ? true : undefined, "aria-describedby": describedBy })}
      {hint && !error ? (
        <span className="hint" id={`${id}-hint`}>
          {hint}
        </span>
      ) : null}
      {error ? (
        <span className="field-error" id={`${id}-error`} role="alert">
          {error}
        </span>
      ) : null}
    </div>
  );
}
