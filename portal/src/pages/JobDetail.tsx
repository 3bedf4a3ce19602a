/**
 * One streaming job: status, the Spark-style charts (input vs processing rate, batch duration by
 * phase, watermark delay, state rows) polled every 2 s and merged by batch id, the preview
 * table, and stop (delete).
 */
import { useEffect, useMemo, useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { call, client } from "../api/client";
import { useMe } from "../auth";
import { Badge } from "../components/Badge";
import { Chart } from "../components/Chart";
import { Link, navigate } from "../components/nav";
import { ProblemView } from "../components/ProblemView";
import { rate } from "../lib/format";
import { mergeProgress, progressSeries, type ProgressDoc } from "../lib/progress";
import { can } from "../lib/roles";
import { pathOf } from "../lib/route";
import { ClusterFrame } from "./ClusterDetail";

const PHASE_COLORS: Record<string, string> = {
  latest_offset: "#7b3294",
  wal_commit: "#c2a5cf",
  execution: "#1b7837",
  state_merge: "#5aae61",
  query_planning: "#a6dba0",
  add_batch: "#e66101",
  commit: "#0571b0",
};

export function JobDetail({ ws, cluster, job }: { ws: string; cluster: string; job: string }) {
  const me = useMe();
  const queryClient = useQueryClient();
  const path = { ws, cluster, job };
  const detail = useQuery({
    queryKey: ["job", ws, cluster, job],
    queryFn: () => call(client.GET("/v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}", { params: { path } })),
    refetchInterval: 2000,
  });
  const progress = useQuery({
    queryKey: ["job-progress", ws, cluster, job],
    queryFn: () =>
      call(client.GET("/v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}/progress", { params: { path, query: { limit: 100 } } })),
    refetchInterval: 2000,
  });
  const preview = useQuery({
    queryKey: ["job-preview", ws, cluster, job],
    queryFn: () =>
      call(client.GET("/v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}/preview", { params: { path, query: { limit: 20 } } })),
    refetchInterval: 2000,
  });
  const [docs, setDocs] = useState<ProgressDoc[]>([]);
  useEffect(() => {
    const incoming: ProgressDoc[] = progress.data?.progress ?? [];
    if (incoming.length) setDocs((prev) => mergeProgress(prev, incoming, 300));
  }, [progress.data]);
  const series = useMemo(() => progressSeries(docs), [docs]);
  const remove = useMutation({
    mutationFn: () => call(client.DELETE("/v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}", { params: { path } })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ["jobs", ws, cluster] });
      navigate(pathOf("workspaces", ws, "clusters", cluster, "jobs"));
    },
  });
  const j = detail.data;
  const last = docs[docs.length - 1];
  return (
    <ClusterFrame ws={ws} name={cluster} tab="jobs">
      {() => (
        <>
          <p className="crumbs">
            <Link to={pathOf("workspaces", ws, "clusters", cluster, "jobs")}>Jobs</Link> / {job}
          </p>
          <div className="title-row">
            <h2>Job {job}</h2>
            {j ? <Badge state={j.status.state} /> : null}
            {j && can(me, ws, "operator") ? (
              <button type="button" className="danger" onClick={() => remove.mutate()} disabled={remove.isPending}>
                Stop and delete job
              </button>
            ) : null}
          </div>
          <ProblemView error={detail.error} context="Cannot read the job" />
          <ProblemView error={remove.error} context="Delete refused" />
          {j ? (
            <dl className="facts">
              <dt>Batches committed</dt>
              <dd data-testid="batches">{j.status.batches_committed ?? 0}</dd>
              <dt>Input rate</dt>
              <dd>{rate(last?.input_rows_per_second)} rows/s</dd>
              <dt>Processing rate</dt>
              <dd>{rate(last?.processed_rows_per_second)} rows/s</dd>
              <dt>Kafka cluster</dt>
              <dd>{j.kafka_cluster ?? "—"}</dd>
              <dt>Submitted</dt>
              <dd>
                by {j.created_by} at {j.created_at}
              </dd>
            </dl>
          ) : null}
          {j?.status.error ? (
            <div className="problem" role="alert">
              <strong>The job failed</strong>
              <p>{j.status.error.detail}</p>
              <p className="problem-meta">
                code <code>{j.status.error.code}</code>
              </p>
            </div>
          ) : null}
          <ProblemView error={progress.error} context="Cannot read the progress" />
          <div className="charts">
            <Chart
              title="Input rate vs processing rate (rows/s)"
              testId="chart-rates"
              unit="rows/s"
              time={series.time}
              series={[
                { label: "input", values: series.inputRate, color: "#0571b0" },
                { label: "processed", values: series.processedRate, color: "#1b7837" },
              ]}
            />
            <Chart
              title="Batch duration by phase (ms)"
              testId="chart-durations"
              unit="ms"
              time={series.time}
              series={[
                { label: "total", values: series.total, color: "#222" },
                ...Object.entries(series.phases).map(([phase, values]) => ({
                  label: phase,
                  values,
                  color: PHASE_COLORS[phase] ?? "#888",
                })),
              ]}
            />
            <Chart
              title="Watermark delay (s)"
              testId="chart-watermark"
              unit="s"
              time={series.time}
              series={[{ label: "max event time − watermark", values: series.watermarkDelay, color: "#e66101" }]}
            />
            <Chart
              title="State rows"
              testId="chart-state"
              unit="rows"
              time={series.time}
              series={[{ label: "rows held", values: series.stateRows, color: "#7b3294" }]}
            />
          </div>
          <section aria-labelledby="preview">
            <h3 id="preview">Preview (latest rows written)</h3>
            <ProblemView error={preview.error} context="Cannot read the preview" />
            {preview.data && preview.data.rows.length > 0 ? (
              <div className="scroll">
                <table data-testid="preview">
                  <thead>
                    <tr>
                      {preview.data.columns.map((c) => (
                        <th scope="col" key={c}>
                          {c}
                        </th>
                      ))}
                    </tr>
                  </thead>
                  <tbody>
                    {preview.data.rows.map((row, i) => (
                      <tr key={i}>
                        {preview.data.columns.map((c) => (
                          <td key={c}>{cell(row[c])}</td>
                        ))}
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            ) : (
              <p>No rows yet (only jobs writing to the memory sink have a preview).</p>
            )}
          </section>
          {j ? (
            <details>
              <summary>SQL</summary>
              <pre className="sql-view">{j.sql}</pre>
            </details>
          ) : null}
        </>
      )}
    </ClusterFrame>
  );
}

function cell(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}
