/**
 * One cluster: state, pools with resize (and drain for Kafka), workloads and their nodes,
 * endpoints, conditions, its operations with their steps, deletion protection and delete. Polled
 * every 2 s while it changes, so it is seen reaching Running without a reload.
 */
import { useState, type FormEvent, type ReactNode } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { call, client } from "../api/client";
import type { Cluster, Operation } from "../api/types";
import { useMe } from "../auth";
import { useClusterMetrics } from "../api/metrics";
import { Badge } from "../components/Badge";
import { Chart } from "../components/Chart";
import { Link, navigate } from "../components/nav";
import { ProblemView } from "../components/ProblemView";
import { ago, transient } from "../lib/format";
import { can } from "../lib/roles";
import { pathOf } from "../lib/route";

export type ClusterTab = "overview" | "topics" | "groups" | "jobs" | "kafka-users";

/** The cluster query shared by the cluster's pages. */
export function useCluster(ws: string, name: string) {
  return useQuery({
    queryKey: ["cluster", ws, name],
    queryFn: () => call(client.GET("/v1/workspaces/{ws}/clusters/{name}", { params: { path: { ws, name } } })),
    refetchInterval: (q) => (transient(q.state.data?.status.state) ? 2000 : 10_000),
  });
}

/** The heading and tab bar of every page of a cluster. */
export function ClusterFrame({
  ws,
  name,
  tab,
  children,
}: {
  ws: string;
  name: string;
  tab: ClusterTab;
  children: (cluster: Cluster) => ReactNode;
}) {
  const cluster = useCluster(ws, name);
  const c = cluster.data;
  const tabs: [ClusterTab, string, string][] = [["overview", "Overview", pathOf("workspaces", ws, "clusters", name)]];
  if (c?.spec.kind === "kafka") {
    tabs.push(["topics", "Topics", pathOf("workspaces", ws, "clusters", name, "topics")]);
    tabs.push(["groups", "Consumer groups", pathOf("workspaces", ws, "clusters", name, "consumer-groups")]);
    tabs.push(["kafka-users", "Kafka users", pathOf("workspaces", ws, "clusters", name, "kafka-users")]);
  }
  if (c?.spec.kind === "spark") tabs.push(["jobs", "Jobs", pathOf("workspaces", ws, "clusters", name, "jobs")]);
  return (
    <main id="main">
      <p className="crumbs">
        <Link to={pathOf("workspaces", ws)}>{ws}</Link> / cluster
      </p>
      <div className="title-row">
        <h1>{name}</h1>
        {c ? <Badge state={c.status.state} /> : null}
        {c ? <span className="muted">{c.spec.kind}</span> : null}
      </div>
      <ProblemView error={cluster.error} context="Cannot read the cluster" />
      {c ? (
        <>
          <nav className="tabs" aria-label="Cluster sections">
            {tabs.map(([id, label, to]) => (
              <Link key={id} to={to} aria-current={id === tab ? "page" : undefined}>
                {label}
              </Link>
            ))}
          </nav>
          {children(c)}
        </>
      ) : null}
    </main>
  );
}

/** After a change was accepted: read the cluster and its operations again. */
function refresh(queryClient: ReturnType<typeof useQueryClient>, ws: string, name: string) {
  void queryClient.invalidateQueries({ queryKey: ["cluster", ws, name] });
  void queryClient.invalidateQueries({ queryKey: ["operations", ws] });
}

export function ClusterDetail({ ws, name }: { ws: string; name: string }) {
  return (
    <ClusterFrame ws={ws} name={name} tab="overview">
      {(c) => <Overview ws={ws} cluster={c} />}
    </ClusterFrame>
  );
}

function Overview({ ws, cluster: c }: { ws: string; cluster: Cluster }) {
  const me = useMe();
  const operator = can(me, ws, "operator");
  return (
    <>
      <section aria-labelledby="pools">
        <h2 id="pools">Pools</h2>
        <table>
          <thead>
            <tr>
              <th scope="col">Pool</th>
              <th scope="col">Ready</th>
              <th scope="col">Size</th>
              <th scope="col">Storage</th>
            </tr>
          </thead>
          <tbody>
            {c.status.pools.map((p) => {
              const spec = c.spec.node_pools.find((s) => s.name === p.name);
              return (
                <tr key={p.name}>
                  <td>{p.name}</td>
                  <td>
                    {p.ready}/{p.desired}
                  </td>
                  <td>{spec?.size ?? "—"}</td>
                  <td>{spec?.storage_gib != null ? `${spec.storage_gib} GiB` : "—"}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {operator ? c.spec.node_pools.map((pool) => <Resize key={pool.name} ws={ws} cluster={c} pool={pool.name} current={pool.replicas} />) : null}
      </section>
      {c.spec.kind === "kafka" && c.status.state !== "Creating" ? <Throughput ws={ws} cluster={c.name} /> : null}
      <section aria-labelledby="endpoints">
        <h2 id="endpoints">Endpoints</h2>
        <dl className="endpoints">
          {c.status.endpoints.bootstrap_servers ? (
            <>
              <dt>Bootstrap servers</dt>
              <dd>
                <code data-testid="bootstrap">{c.status.endpoints.bootstrap_servers}</code>{" "}
                <CopyButton text={c.status.endpoints.bootstrap_servers} label="Copy bootstrap servers" />
              </dd>
              <dt>Security protocol</dt>
              <dd>{c.status.endpoints.security_protocol ?? "—"}</dd>
            </>
          ) : null}
          {c.status.endpoints.job_api ? (
            <>
              <dt>Job API</dt>
              <dd>
                <code>{c.status.endpoints.job_api}</code>
              </dd>
            </>
          ) : null}
          {!c.status.endpoints.bootstrap_servers && !c.status.endpoints.job_api ? <dd>None yet.</dd> : null}
        </dl>
      </section>
      <section aria-labelledby="workloads">
        <h2 id="workloads">Workloads</h2>
        {c.status.workloads.length === 0 ? (
          <p>No workloads placed yet.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">Workload</th>
                <th scope="col">Role</th>
                <th scope="col">Node</th>
                <th scope="col">Fault domain</th>
                <th scope="col">Address</th>
                <th scope="col">State</th>
                <th scope="col">Restarts</th>
              </tr>
            </thead>
            <tbody>
              {c.status.workloads.map((w) => (
                <tr key={w.name}>
                  <td>{w.name}</td>
                  <td>{w.role}</td>
                  <td>{w.node}</td>
                  <td>{w.fault_domain}</td>
                  <td>
                    <code>{w.address}</code>
                  </td>
                  <td>
                    <Badge state={w.removing ? "Stopping" : w.state} />
                  </td>
                  <td>{w.restarts}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section aria-labelledby="conditions">
        <h2 id="conditions">Conditions</h2>
        <table>
          <thead>
            <tr>
              <th scope="col">Type</th>
              <th scope="col">Status</th>
              <th scope="col">Reason</th>
              <th scope="col">Message</th>
              <th scope="col">Since</th>
            </tr>
          </thead>
          <tbody>
            {c.status.conditions.map((cond) => (
              <tr key={cond.type}>
                <td>{cond.type}</td>
                <td>
                  <Badge state={cond.status} />
                </td>
                <td>{cond.reason}</td>
                <td>{cond.message}</td>
                <td>{ago(cond.last_transition_time)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <Operations ws={ws} cluster={c} />
      {operator ? <Danger ws={ws} cluster={c} /> : null}
    </>
  );
}

/** Records in and consumed per second, from the control plane's samples. */
function Throughput({ ws, cluster }: { ws: string; cluster: string }) {
  const metrics = useClusterMetrics(ws, cluster);
  const m = metrics.data;
  return (
    <section aria-labelledby="throughput">
      <h2 id="throughput">Throughput</h2>
      <ProblemView error={metrics.error} context="Cannot read the cluster's metrics" />
      {m ? (
        <Chart
          title="Records per second"
          testId="chart-throughput"
          unit="records/s"
          time={m.timestamps_ms.map((t) => t / 1000)}
          series={[
            { label: "in", values: m.records_in_per_sec, color: "#0571b0" },
            { label: "consumed", values: m.records_consumed_per_sec, color: "#1b7837" },
          ]}
        />
      ) : null}
    </section>
  );
}

function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      className="small"
      aria-label={label}
      onClick={() => {
        void navigator.clipboard?.writeText(text).then(() => setDone(true));
      }}
    >
      {done ? "Copied" : "Copy"}
    </button>
  );
}

function Resize({ ws, cluster, pool, current }: { ws: string; cluster: Cluster; pool: string; current: number }) {
  const queryClient = useQueryClient();
  const [replicas, setReplicas] = useState(current);
  const [drain, setDrain] = useState(false);
  const kafka = cluster.spec.kind === "kafka";
  const resize = useMutation({
    mutationFn: () =>
      call(
        client.PATCH("/v1/workspaces/{ws}/clusters/{name}", {
          params: { path: { ws, name: cluster.name } },
          body: { node_pools: [{ name: pool, replicas }], drain: kafka ? drain : undefined },
        }),
      ),
    onSuccess: () => refresh(queryClient, ws, cluster.name),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    resize.mutate();
  };
  const id = `resize-${pool}`;
  return (
    <form onSubmit={submit} className="inline-form" aria-label={`Resize pool ${pool}`}>
      <div className="field">
        <label htmlFor={id}>
          {kafka ? "Brokers" : "Executors"} in {pool}
        </label>
        <input id={id} type="number" min={1} value={replicas} onChange={(e) => setReplicas(Number(e.target.value))} />
      </div>
      {kafka ? (
        <div className="field checkbox">
          <input id={`${id}-drain`} type="checkbox" checked={drain} onChange={(e) => setDrain(e.target.checked)} />
          <label htmlFor={`${id}-drain`}>Drain: move partitions off removed brokers first</label>
        </div>
      ) : null}
      <button type="submit" disabled={resize.isPending || replicas === current}>
        Resize
      </button>
      <ProblemView error={resize.error} context="Resize refused" />
    </form>
  );
}

function Operations({ ws, cluster }: { ws: string; cluster: Cluster }) {
  const ops = useQuery({
    queryKey: ["operations", ws],
    queryFn: () => call(client.GET("/v1/workspaces/{ws}/operations", { params: { path: { ws }, query: { page_size: 100 } } })),
    refetchInterval: transient(cluster.status.state) ? 2000 : 10_000,
  });
  const mine = (ops.data?.items ?? []).filter((o) => o.cluster_id === cluster.id).slice(0, 10);
  return (
    <section aria-labelledby="operations">
      <h2 id="operations">Operations</h2>
      <ProblemView error={ops.error} context="Cannot list operations" />
      {mine.length === 0 ? <p>No operations.</p> : null}
      {mine.map((op, i) => (
        <OperationView key={op.id} op={op} open={i === 0} />
      ))}
    </section>
  );
}

/** One operation: kind, state, who, its steps and its error. */
export function OperationView({ op, open }: { op: Operation; open: boolean }) {
  return (
    <details className="operation" open={open} data-operation={op.kind}>
      <summary>
        <strong>{op.kind.replace(/_/g, " ")}</strong> <Badge state={op.state} of="operation" /> <span className="muted">by {op.created_by}, {ago(op.created_at)}</span>
      </summary>
      {op.error ? (
        <p className="problem" role="note">
          <code>{op.error.code}</code>: {op.error.detail}
        </p>
      ) : null}
      <ol className="steps">
        {op.steps.map((s, i) => (
          <li key={i}>
            <Badge state={s.state} of="operation" /> {s.name}
            {s.detail ? <span className="muted"> — {s.detail}</span> : null}
          </li>
        ))}
      </ol>
    </details>
  );
}

function Danger({ ws, cluster }: { ws: string; cluster: Cluster }) {
  const queryClient = useQueryClient();
  const [confirm, setConfirm] = useState("");
  const protection = useMutation({
    mutationFn: (on: boolean) =>
      call(
        client.PATCH("/v1/workspaces/{ws}/clusters/{name}", {
          params: { path: { ws, name: cluster.name } },
          body: { deletion_protection: on },
        }),
      ),
    onSuccess: () => refresh(queryClient, ws, cluster.name),
  });
  const remove = useMutation({
    mutationFn: () => call(client.DELETE("/v1/workspaces/{ws}/clusters/{name}", { params: { path: { ws, name: cluster.name } } })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ["clusters", ws] });
      navigate(pathOf("workspaces", ws));
    },
  });
  const protectedNow = cluster.spec.deletion_protection ?? false;
  return (
    <section aria-labelledby="danger" className="danger">
      <h2 id="danger">Delete</h2>
      <div className="field checkbox">
        <input
          id="deletion-protection"
          type="checkbox"
          checked={protectedNow}
          disabled={protection.isPending}
          onChange={(e) => protection.mutate(e.target.checked)}
        />
        <label htmlFor="deletion-protection">Deletion protection</label>
      </div>
      <ProblemView error={protection.error} />
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          remove.mutate();
        }}
      >
        <div className="field">
          <label htmlFor="delete-confirm">Type the cluster's name to delete it</label>
          <input id="delete-confirm" value={confirm} onChange={(e) => setConfirm(e.target.value)} />
        </div>
        <button type="submit" className="danger" disabled={confirm !== cluster.name || remove.isPending}>
          Delete cluster
        </button>
      </form>
      <ProblemView error={remove.error} context="Delete refused" />
    </section>
  );
}
