/**
 * A workspace's clusters: the paginated table (polled every 2 s while a cluster is changing,
 * else every 10 s) and the create form (sizes and versions from `GET /v1/capabilities`; the
 * server's field errors at their fields).
 */
import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { call, client } from "../api/client";
import type { ClusterSpec } from "../api/types";
import { useMe } from "../auth";
import { Badge } from "../components/Badge";
import { Field } from "../components/Field";
import { Link, navigate } from "../components/nav";
import { Pager, usePageTokens } from "../components/Pager";
import { ProblemView } from "../components/ProblemView";
import { ago, transient } from "../lib/format";
import { fieldError, toProblem } from "../lib/problem";
import { can } from "../lib/roles";
import { pathOf } from "../lib/route";

export function Clusters({ ws }: { ws: string }) {
  const me = useMe();
  const paging = usePageTokens();
  const list = useQuery({
    queryKey: ["clusters", ws, paging.token],
    queryFn: () =>
      call(client.GET("/v1/workspaces/{ws}/clusters", { params: { path: { ws }, query: { page_token: paging.token } } })),
    refetchInterval: (q) => (q.state.data?.items.some((c) => transient(c.status.state)) ? 2000 : 10_000),
  });
  return (
    <main id="main">
      <div className="title-row">
        <h1>Clusters in {ws}</h1>
        {can(me, ws, "operator") ? (
          <Link className="button primary" to={pathOf("workspaces", ws, "new-cluster")}>
            Create cluster
          </Link>
        ) : null}
      </div>
      <ProblemView error={list.error} context="Cannot list clusters" />
      {list.data ? (
        list.data.items.length === 0 ? (
          <p>No clusters in this workspace yet.</p>
        ) : (
          <table className="clusters">
            <caption className="sr-only">Clusters</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Kind</th>
                <th scope="col">State</th>
                <th scope="col">Ready</th>
                <th scope="col">Version</th>
                <th scope="col">Updated</th>
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((c) => (
                <tr key={c.id} data-cluster={c.name}>
                  <td>
                    <Link to={pathOf("workspaces", ws, "clusters", c.name)}>{c.name}</Link>
                  </td>
                  <td>{c.spec.kind}</td>
                  <td>
                    <Badge state={c.status.state} />
                  </td>
                  <td>{c.status.pools.map((p) => `${p.name} ${p.ready}/${p.desired}`).join(", ")}</td>
                  <td>{c.spec.version ?? "default"}</td>
                  <td>{ago(c.updated_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      ) : null}
      <Pager
        label="Clusters"
        page={paging.page}
        nextToken={list.data?.next_page_token}
        onNext={paging.next}
        onPrevious={paging.previous}
      />
    </main>
  );
}

/** The fields the create form shows errors at; a problem about any other is shown whole. */
const CREATE_FIELDS = ["name", "kind", "node_pools[0].replicas", "node_pools[0].size", "node_pools[0].storage_gib"];

export function ClusterCreate({ ws }: { ws: string }) {
  const me = useMe();
  const queryClient = useQueryClient();
  const caps = useQuery({ queryKey: ["capabilities"], queryFn: () => call(client.GET("/v1/capabilities")) });
  const [name, setName] = useState("");
  const [kind, setKind] = useState<"kafka" | "spark">("kafka");
  const [replicas, setReplicas] = useState(3);
  const [size, setSize] = useState("small");
  const [storage, setStorage] = useState(10);
  const [secured, setSecured] = useState(true);
  const [protection, setProtection] = useState(false);
  const create = useMutation({
    mutationFn: (spec: ClusterSpec) =>
      call(client.PUT("/v1/workspaces/{ws}/clusters/{name}", { params: { path: { ws, name } }, body: spec })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ["clusters", ws] });
      navigate(pathOf("workspaces", ws, "clusters", name));
    },
  });
  if (!can(me, ws, "operator")) {
    return (
      <main id="main">
        <h1>Create a cluster</h1>
        <p role="alert" className="problem">
          Not permitted: creating clusters in {ws} needs the operator role.
        </p>
      </main>
    );
  }
  const kindCaps = caps.data?.kinds.find((k) => k.kind === kind);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const spec: ClusterSpec = {
      kind,
      deletion_protection: protection,
      node_pools: [
        {
          name: kind === "kafka" ? "brokers" : "executors",
          role: kind === "kafka" ? "broker" : "executor",
          replicas,
          size,
          storage_gib: storage,
        },
      ],
    };
    if (kind === "kafka" && !secured) spec.security = { tls: false, authentication: [], authorization: false };
    create.mutate(spec);
  };
  const problem = create.error ? toProblem(create.error) : null;
  return (
    <main id="main">
      <h1>Create a cluster in {ws}</h1>
      <ProblemView error={caps.error} context="Cannot read the capabilities" />
      <form onSubmit={submit} className="form" aria-label="Create cluster">
        <Field label="Name" name="name" problem={problem} hint="A DNS label: lowercase letters, digits and -">
          {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} required />}
        </Field>
        <Field label="Kind" name="kind" problem={problem}>
          {(p) => (
            <select {...p} value={kind} onChange={(e) => setKind(e.target.value as "kafka" | "spark")}>
              <option value="kafka">Kafka</option>
              <option value="spark">Spark (streaming SQL)</option>
            </select>
          )}
        </Field>
        <Field
          label={kind === "kafka" ? "Brokers" : "Executors"}
          name="node_pools[0].replicas"
          problem={problem}
          hint={kindCaps ? `${kindCaps.min_replicas}–${kindCaps.max_replicas}` : undefined}
        >
          {(p) => (
            <input
              {...p}
              type="number"
              min={kindCaps?.min_replicas ?? 1}
              max={kindCaps?.max_replicas}
              value={replicas}
              onChange={(e) => setReplicas(Number(e.target.value))}
            />
          )}
        </Field>
        <Field label="Size" name="node_pools[0].size" problem={problem}>
          {(p) => (
            <select {...p} value={size} onChange={(e) => setSize(e.target.value)}>
              {(caps.data?.sizes ?? [{ name: "small", cpu_millis: 0, memory_bytes: 0 }]).map((s) => (
                <option key={s.name} value={s.name}>
                  {s.name}
                  {s.cpu_millis ? ` (${s.cpu_millis / 1000} CPU, ${Math.round(s.memory_bytes / 2 ** 20)} MiB)` : ""}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Storage per workload (GiB)" name="node_pools[0].storage_gib" problem={problem}>
          {(p) => (
            <input
              {...p}
              type="number"
              min={1}
              max={caps.data?.max_storage_gib}
              value={storage}
              onChange={(e) => setStorage(Number(e.target.value))}
            />
          )}
        </Field>
        {kind === "kafka" ? (
          <div className="field checkbox">
            <input id="secured" type="checkbox" checked={secured} onChange={(e) => setSecured(e.target.checked)} />
            <label htmlFor="secured">Secured (TLS, SASL and ACLs)</label>
          </div>
        ) : null}
        <div className="field checkbox">
          <input id="protection" type="checkbox" checked={protection} onChange={(e) => setProtection(e.target.checked)} />
          <label htmlFor="protection">Deletion protection</label>
        </div>
        {problem && !CREATE_FIELDS.some((f) => fieldError(problem, f)) ? <ProblemView error={create.error} /> : null}
        <button type="submit" className="primary" disabled={create.isPending}>
          {create.isPending ? "Creating…" : "Create cluster"}
        </button>
      </form>
    </main>
  );
}
