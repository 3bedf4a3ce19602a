/**
 * The live tail of a topic: server-sent events from `GET …/records` (with the session cookie),
 * records batched per animation frame into a bounded buffer of the newest rows, pause (the view
 * stays while records keep arriving), seek (earliest, latest, offset, time), key/value filters,
 * and why the stream ended.
 */
import { memo, useEffect, useRef, useState, type FormEvent } from "react";
import { ProblemView } from "../components/ProblemView";
import { parseProblem, unreachableProblem, ProblemError } from "../lib/problem";
import {
  FrameBatcher,
  TailBuffer,
  endReason,
  tailUrl,
  type Seek,
  type TailEnd,
  type TailProgress,
  type TailRecord,
} from "../lib/tail";

type From = Seek["from"];

const Row = memo(function Row({ r }: { r: TailRecord }) {
  return (
    <tr data-partition={r.partition} data-offset={r.offset}>
      <td>{r.partition}</td>
      <td>{r.offset}</td>
      <td>{new Date(r.timestamp_ms).toISOString().replace("T", " ").slice(0, 23)}</td>
      <td className="mono">{r.key ?? <span className="muted">null</span>}</td>
      <td className="mono value">{r.value ?? <span className="muted">null</span>}</td>
    </tr>
  );
});

export function Tail({
  ws,
  cluster,
  topic,
  partitions,
  onRunning,
}: {
  ws: string;
  cluster: string;
  topic: string;
  partitions: number;
  /** Told when the tail starts and stops (the topic page refreshes its offsets faster meanwhile). */
  onRunning?: (running: boolean) => void;
}) {
  const [from, setFrom] = useState<From>("latest");
  const [partition, setPartition] = useState("");
  const [offset, setOffset] = useState("0");
  const [time, setTime] = useState("");
  const [keyContains, setKeyContains] = useState("");
  const [valueContains, setValueContains] = useState("");
  const [capacity, setCapacity] = useState(500);
  const [maxRecords, setMaxRecords] = useState(10000);

  const [running, setRunning] = useState(false);
  const [paused, setPaused] = useState(false);
  const [rows, setRows] = useState<TailRecord[]>([]);
  const [total, setTotal] = useState(0);
  const [progress, setProgress] = useState<TailProgress | null>(null);
  const [end, setEnd] = useState<TailEnd | null>(null);
  const [error, setError] = useState<unknown>(null);

  const source = useRef<EventSource | null>(null);
  const batcher = useRef<FrameBatcher<TailRecord> | null>(null);
  const buffer = useRef(new TailBuffer(capacity));
  const pausedRef = useRef(false);

  const stop = () => {
    source.current?.close();
    source.current = null;
    batcher.current?.drain();
    batcher.current?.stop();
    batcher.current = null;
    setRunning(false);
  };

  useEffect(() => stop, []);
  useEffect(() => onRunning?.(running), [running, onRunning]);

  const start = (e?: FormEvent) => {
    e?.preventDefault();
    stop();
    buffer.current = new TailBuffer(capacity);
    setRows([]);
    setTotal(0);
    setEnd(null);
    setError(null);
    setProgress(null);
    setPaused(false);
    pausedRef.current = false;
    let seek: Seek;
    if (from === "offset") seek = { from, offset: Number(offset), partition: partition === "" ? undefined : Number(partition) };
    else if (from === "timestamp") seek = { from, timestamp_ms: time ? Date.parse(time) : Date.now() };
    else seek = { from };
    const url = tailUrl(ws, cluster, topic, {
      seek,
      partition: partition === "" ? null : Number(partition),
      keyContains,
      valueContains,
      maxRecords,
      maxSeconds: 600,
    });
    const batch = new FrameBatcher<TailRecord>((records) => {
      buffer.current.push(records);
      setTotal(buffer.current.total);
      if (!pausedRef.current) setRows(buffer.current.rows());
    });
    batcher.current = batch;
    const es = new EventSource(url, { withCredentials: true });
    source.current = es;
    let opened = false;
    es.onopen = () => {
      opened = true;
    };
    es.addEventListener("record", (ev) => {
      try {
        batch.add(JSON.parse((ev as MessageEvent<string>).data) as TailRecord);
      } catch {
        // A malformed event is skipped; the end event still says how many were sent.
      }
    });
    es.addEventListener("progress", (ev) => {
      try {
        setProgress(JSON.parse((ev as MessageEvent<string>).data) as TailProgress);
      } catch {
        /* ignored */
      }
    });
    es.addEventListener("end", (ev) => {
      batch.drain();
      try {
        setEnd(JSON.parse((ev as MessageEvent<string>).data) as TailEnd);
      } catch {
        setEnd({ reason: "error", records: 0, scanned: 0, detail: "unreadable end event" });
      }
      if (!pausedRef.current) setRows(buffer.current.rows());
      es.close();
      setRunning(false);
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED || !opened) {
        // EventSource hides the answer: ask again to show its problem document.
        es.close();
        setRunning(false);
        void explain(url).then(setError);
      } else {
        // The stream broke mid-way: do not let EventSource reconnect and replay from the start.
        es.close();
        batch.drain();
        setRunning(false);
        setError(new ProblemError(unreachableProblem(new Error("the live tail's connection was lost"))));
      }
    };
    setRunning(true);
  };

  const togglePause = () => {
    const next = !paused;
    setPaused(next);
    pausedRef.current = next;
    if (!next) setRows(buffer.current.rows());
  };

  const shown = [...rows].reverse();
  return (
    <section aria-labelledby="tail" className="tail">
      <h3 id="tail">Live tail</h3>
      <form onSubmit={start} className="tail-controls" aria-label="Live tail">
        <div className="field">
          <label htmlFor="tail-from">From</label>
          <select id="tail-from" value={from} onChange={(e) => setFrom(e.target.value as From)}>
            <option value="latest">Latest (new records)</option>
            <option value="earliest">Earliest</option>
            <option value="offset">Offset</option>
            <option value="timestamp">Time</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor="tail-partition">Partition</label>
          <select id="tail-partition" value={partition} onChange={(e) => setPartition(e.target.value)}>
            <option value="">All</option>
            {Array.from({ length: partitions }, (_, i) => (
              <option key={i} value={String(i)}>
                {i}
              </option>
            ))}
          </select>
        </div>
        {from === "offset" ? (
          <div className="field">
            <label htmlFor="tail-offset">Offset</label>
            <input id="tail-offset" type="number" min={0} value={offset} onChange={(e) => setOffset(e.target.value)} />
          </div>
        ) : null}
        {from === "timestamp" ? (
          <div className="field">
            <label htmlFor="tail-time">Time</label>
            <input id="tail-time" type="datetime-local" step={1} value={time} onChange={(e) => setTime(e.target.value)} />
          </div>
        ) : null}
        <div className="field">
          <label htmlFor="tail-key">Key contains</label>
          <input id="tail-key" value={keyContains} onChange={(e) => setKeyContains(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="tail-value">Value contains</label>
          <input id="tail-value" value={valueContains} onChange={(e) => setValueContains(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="tail-rows">Rows kept</label>
          <select id="tail-rows" value={capacity} onChange={(e) => setCapacity(Number(e.target.value))}>
            {[100, 500, 2000].map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="tail-max">Stop after records</label>
          <input id="tail-max" type="number" min={1} max={10000} value={maxRecords} onChange={(e) => setMaxRecords(Number(e.target.value))} />
        </div>
        <div className="buttons">
          <button type="submit" className="primary">
            {running ? "Restart tail" : "Start tail"}
          </button>
          <button type="button" onClick={stop} disabled={!running}>
            Stop
          </button>
          <button type="button" onClick={togglePause} disabled={!running && !paused} aria-pressed={paused}>
            {paused ? "Resume view" : "Pause view"}
          </button>
        </div>
      </form>
      <p className="tail-status" role="status" data-testid="tail-status" data-running={running} data-total={total}>
        {running ? (paused ? "Paused (records keep arriving)" : "Tailing") : end ? "Ended" : "Not running"} · {total}{" "}
        received
        {progress ? ` · ${progress.scanned} scanned, ${progress.matched} matched` : ""}
        {total > rows.length && !paused ? ` · showing the newest ${rows.length}` : ""}
      </p>
      {end ? (
        <p className="notice" data-testid="tail-end" data-reason={end.reason}>
          {endReason(end)}
        </p>
      ) : null}
      <ProblemView error={error} context="Live tail" />
      <div className="tail-table" tabIndex={0} role="region" aria-label="Live tail records">
        <table data-testid="tail-rows" aria-label="Records, newest first">
          <thead>
            <tr>
              <th scope="col">Partition</th>
              <th scope="col">Offset</th>
              <th scope="col">Timestamp</th>
              <th scope="col">Key</th>
              <th scope="col">Value</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((r) => (
              <Row key={`${r.partition}:${r.offset}`} r={r} />
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

/** The problem of a records URL that EventSource could not open. */
async function explain(url: string): Promise<unknown> {
  const abort = new AbortController();
  try {
    const response = await fetch(url, {
      headers: { accept: "text/event-stream" },
      credentials: "same-origin",
      signal: abort.signal,
    });
    if (response.ok) {
      abort.abort();
      return new ProblemError(unreachableProblem(new Error("the live tail's connection failed")));
    }
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* text */
    }
    return new ProblemError(parseProblem(response.status, body, response.statusText));
  } catch (error) {
    return new ProblemError(unreachableProblem(error));
  }
}
