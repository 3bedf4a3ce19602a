/**
 * A state badge: colour by meaning, the state's word always written (never colour alone).
 * `Running` is a steady state of a cluster (green) but an operation or step still under way
 * (`of="operation"`: busy, not green); replication links and Kafka users have lowercase states.
 */
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
  // Replication links, their mirror partitions, and Kafka users.
  mirroring: "ok",
  active: "ok",
  applied: "ok",
  paused: "idle",
  promoted: "idle",
  failed_over: "idle",
  stopped: "idle",
  promoting: "busy",
  failing_over: "busy",
  reversing: "busy",
  stopping: "busy",
  pending: "busy",
  source_unavailable: "bad",
  failed: "bad",
};

/** Operations and their steps: under way is busy, whatever the word. */
const OPERATION_TONE: Record<string, string> = { Running: "busy" };

/** The tone class of `state` (`ok`, `busy`, `bad` or `idle`). */
export function toneOf(state: string, of?: "operation"): string {
  return (of === "operation" ? OPERATION_TONE[state] : undefined) ?? TONE[state] ?? "idle";
}

export function Badge({ state, of }: { state: string; of?: "operation" }) {
  return (
    <span className={`badge badge-${toneOf(state, of)}`} data-state={state}>
      {state.replace(/_/g, " ")}
    </span>
  );
}
