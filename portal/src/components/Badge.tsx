/** A state badge: colour by meaning, the state's word always written (never colour alone). */
const TONE: Record<string, string> = {
  Running: "ok",
  Ready: "ok",
  Succeeded: "ok",
  Completed: "ok",
  Done: "ok",
  True: "ok",
  Creating: "busy",
  Resizing: "busy",
  Deleting: "busy",
  Pending: "busy",
  Starting: "busy",
  Stopping: "busy",
  Failed: "bad",
  NotReady: "bad",
  Backoff: "bad",
  False: "bad",
  Stopped: "idle",
  Unknown: "idle",
};

export function Badge({ state }: { state: string }) {
  return (
    <span className={`badge badge-${TONE[state] ?? "idle"}`} data-state={state}>
      {state}
    </span>
  );
}
