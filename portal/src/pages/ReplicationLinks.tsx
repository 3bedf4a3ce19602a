/**
 * A workspace's replication links (geo-replication pairs of Kafka clusters): the list with each
 * link's state, its source → target and its lag now; the create form (the server's field errors
 * at their fields); and one link's page: state, status as the target's brokers report it (mirror
 * topics and per-partition lag), a lag chart the browser draws from polling `.../lag`, the
 * operations (pause, resume, promote, failover, reverse) each behind a confirm step saying what
 * it does and what it may lose, and delete.
 */
import { useEffect, useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { call, client } from "../api/client";
import type { Operation, ReplicationLink, ReplicationLinkSpec, ReplicationLinkStatus } from "../api/types";
import { useMe } from "../auth";
import { Badge } from "../components/Badge";
import { Chart } from "../components/Chart";
import { Field } from "../components/Field";
import { Link, navigate } from "../components/nav";
import { Pager, usePageTokens } from "../components/Pager";
import { ProblemView } from "../components/ProblemView";
import { ago, bytes } from "../lib/format";
import { appendLag, lagSeconds, lagSeries, type LagSample } from "../lib/lag";
import { fieldError, toProblem } from "../lib/problem";
import { can } from "../lib/roles";
import { pathOf } from "../lib/route";
import { OperationView } from "./ClusterDetail";

/** States a link leaves by itself (an operation is running on it). */
const MOVING = new Set(["promoting", "failing_over", "reversing"]);

function linkPath(ws: string, name?: string): string {
  return name ? pathOf("workspaces", ws, "replication-links", name) : pathOf("workspaces", ws, "replication-links");
}

function useLag(ws: string, name: string, interval: number) {
  return useQuery({
    queryKey: ["link-lag", ws, name],
    queryFn: () =>
      call(client.GET("/v1/workspaces/{ws}/replication-links/{name}/lag", { params: { path: { ws, name } } })),
    refetchInterval: interval,
  });
}

/** Records and seconds behind, as one cell. */
function LagText({ status }: { status: ReplicationLinkStatus | null | undefined }) {
  if (!status) return <>—</>;
  if (!status.observed) return <span className="bad-text">target not answering</span>;
  if (status.lag_records == null) return <span className="muted">not reported</span>;
  return (
    <>
      {status.lag_records.toLocaleString("en")} records · {lagSeconds(status.rpo_seconds)}
    </>
  );
}

function LagCell({ ws, name }: { ws: string; name: string }) {
  const lag = useLag(ws, name, 5000);
  if (lag.error) return <span className="bad-text">{toProblem(lag.error).title}</span>;
  return <LagText status={lag.data} />;
}

export function ReplicationLinks({ ws }: { ws: string }) {
  const me = useMe();
  const paging = usePageTokens();
  const list = useQuery({
    queryKey: ["links", ws, paging.token],
    queryFn: () =>
      call(
        client.GET("/v1/workspaces/{ws}/replication-links", {
          params: { path: { ws }, query: { page_token: paging.token, page_size: 50 } },
        }),
      ),
    refetchInterval: (q) => (q.state.data?.items.some((l) => MOVING.has(l.state) || l.operation) ? 2000 : 10_000),
  });
  return (
    <main id="main">
      <div className="title-row">
        <h1>Replication links in {ws}</h1>
        {can(me, ws, "operator") ? (
          <Link className="button primary" to={pathOf("workspaces", ws, "new-replication-link")}>
            Create link
          </Link>
        ) : null}
      </div>
      <p className="muted">
        A link keeps read-only mirrors of a Kafka cluster's topics on another cluster in other fault domains, at the same
        offsets, with consumer groups' committed offsets copied.
      </p>
      <ProblemView error={list.error} context="Cannot list replication links" />
      {list.data ? (
        list.data.items.length === 0 ? (
          <p>No replication links in this workspace yet.</p>
        ) : (
          <table data-testid="links">
            <caption className="sr-only">Replication links</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">State</th>
                <th scope="col">Source → target</th>
                <th scope="col">Topics</th>
                <th scope="col">Lag now</th>
                <th scope="col">Updated</th>
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((l) => (
                <tr key={l.name} data-link={l.name}>
                  <td>
                    <Link to={linkPath(ws, l.name)}>{l.name}</Link>
                  </td>
                  <td>
                    <Badge state={l.state} />
                  </td>
                  <td>
                    {l.source_cluster} → {l.target_cluster}
                  </td>
                  <td>{l.topics.join(", ")}</td>
                  <td data-testid="link-lag">
                    <LagCell ws={ws} name={l.name} />
                  </td>
                  <td>{ago(l.updated_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      ) : null}
      <Pager
        label="Replication links"
        page={paging.page}
        nextToken={list.data?.next_page_token}
        onNext={paging.next}
        onPrevious={paging.previous}
      />
    </main>
  );
}

/** "a, b*, c" as a list (empty entries dropped). */
function splitList(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The fields the create form shows errors at; a problem about any other is shown whole. */
const LINK_FIELDS = ["name", "source_cluster", "target_cluster", "topics", "topics_exclude", "groups", "groups_exclude"];

export function LinkCreate({ ws }: { ws: string }) {
  const me = useMe();
  const queryClient = useQueryClient();
  const clusters = useQuery({
    queryKey: ["clusters", ws, "kafka-for-links"],
    queryFn: () =>
      call(client.GET("/v1/workspaces/{ws}/clusters", { params: { path: { ws }, query: { page_size: 200 } } })),
  });
  const [name, setName] = useState("");
  const [source, setSource] = useState("");
  const [target, setTarget] = useState("");
  const [topics, setTopics] = useState("");
  const [topicsExclude, setTopicsExclude] = useState("");
  const [groups, setGroups] = useState("");
  const [groupsExclude, setGroupsExclude] = useState("");
  const create = useMutation({
    mutationFn: (spec: ReplicationLinkSpec) =>
      call(client.PUT("/v1/workspaces/{ws}/replication-links/{name}", { params: { path: { ws, name } }, body: spec })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ["links", ws] });
      navigate(linkPath(ws, name));
    },
  });
  if (!can(me, ws, "operator")) {
    return (
      <main id="main">
        <h1>Create a replication link</h1>
        <p role="alert" className="problem">
          Not permitted: creating replication links in {ws} needs the operator role.
        </p>
      </main>
    );
  }
  const kafka = (clusters.data?.items ?? []).filter((c) => c.spec.kind === "kafka").map((c) => c.name);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate({
      source_cluster: source,
      target_cluster: target,
      topics: splitList(topics),
      topics_exclude: splitList(topicsExclude),
      groups: splitList(groups),
      groups_exclude: splitList(groupsExclude),
    });
  };
  const problem = create.error ? toProblem(create.error) : null;
  const clusterSelect = (value: string, set: (v: string) => void) => (p: { id: string; name: string }) => (
    <select {...p} value={value} onChange={(e) => set(e.target.value)} required>
      <option value="">Choose a Kafka cluster</option>
      {kafka.map((c) => (
        <option key={c} value={c}>
          {c}
        </option>
      ))}
    </select>
  );
  return (
    <main id="main">
      <p className="crumbs">
        <Link to={linkPath(ws)}>Replication links</Link> / new
      </p>
      <h1>Create a replication link in {ws}</h1>
      <ProblemView error={clusters.error} context="Cannot list the clusters" />
      <form onSubmit={submit} className="form" aria-label="Create replication link">
        <Field label="Name" name="name" problem={problem} hint="Letters, digits, - and _">
          {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} required />}
        </Field>
        <Field label="Source cluster" name="source_cluster" problem={problem} hint="The primary: copied from">
          {clusterSelect(source, setSource)}
        </Field>
        <Field
          label="Target cluster"
          name="target_cluster"
          problem={problem}
          hint="The secondary: holds the read-only mirror topics; its brokers must be in other fault domains"
        >
          {clusterSelect(target, setTarget)}
        </Field>
        <Field label="Topics" name="topics" problem={problem} hint="Names or prefix* patterns, comma-separated">
          {(p) => <input {...p} value={topics} onChange={(e) => setTopics(e.target.value)} />}
        </Field>
        <Field label="Topics never mirrored" name="topics_exclude" problem={problem} hint="Optional; exclusions win">
          {(p) => <input {...p} value={topicsExclude} onChange={(e) => setTopicsExclude(e.target.value)} />}
        </Field>
        <Field label="Consumer groups" name="groups" problem={problem} hint="Optional: groups whose committed offsets are copied every second">
          {(p) => <input {...p} value={groups} onChange={(e) => setGroups(e.target.value)} />}
        </Field>
        <Field label="Groups never copied" name="groups_exclude" problem={problem} hint="Optional">
          {(p) => <input {...p} value={groupsExclude} onChange={(e) => setGroupsExclude(e.target.value)} />}
        </Field>
        {problem && !LINK_FIELDS.some((f) => fieldError(problem, f)) ? (
          <ProblemView error={create.error} context="Cannot create the link" />
        ) : null}
        <button type="submit" className="primary" disabled={create.isPending}>
          {create.isPending ? "Creating…" : "Create link"}
        </button>
      </form>
    </main>
  );
}

type Action = "pause" | "resume" | "promote" | "failover" | "reverse";

/** What each operation does, in the API's words, for the confirm step. */
function explain(action: Action, l: ReplicationLink, status: ReplicationLinkStatus | undefined): string {
  const s = l.source_cluster;
  const t = l.target_cluster;
  switch (action) {
    case "pause":
      return `${t} stops fetching from ${s}. Records written to ${s} meanwhile are not copied and the lag grows; resume carries on from where it stopped. Nothing is lost.`;
    case "resume":
      return `${t} fetches from ${s} again, from where it stopped, and catches up.`;
    case "promote":
      return `Planned switchover, nothing lost: ${s}'s mirrored topics stop taking writes, ${t} copies to zero lag, copies the groups' offsets a last time and stops mirroring; ${t}'s topics become writable. Point producers and consumers at ${t} afterwards. The link ends promoted.`;
    case "failover": {
      const records = status?.lag_records;
      const secs = status?.rpo_seconds;
      const now =
        records != null
          ? ` Right now ${t} is ${records.toLocaleString("en")} records and ${lagSeconds(secs)} behind: a failover now loses up to that many of ${s}'s records on ${t}.`
          : " The current lag is not known, so neither is the loss bound before the failover.";
      return `Forced failover, for when ${s} is lost: every mirror partition stops at once at ${t}'s high watermark and ${t}'s topics become writable. Records ${s} had that ${t} had not copied yet are not on ${t}.${now} The operation's result records the exact loss bound (records and milliseconds). The link ends failed over.`;
    }
    case "reverse":
      return `${s} becomes the mirror of ${t}: records ${s} took after the stop (that ${t} does not have) are moved to <topic>.quarantine topics first, the old link is removed, and source and target swap. The link ends mirroring the other way round.`;
  }
}

const ACTION_LABEL: Record<Action, string> = {
  pause: "Pause",
  resume: "Resume",
  promote: "Promote",
  failover: "Fail over",
  reverse: "Reverse",
};

/** The operations the link's state allows (the server still decides). */
function actionsFor(l: ReplicationLink): Action[] {
  if (l.operation || MOVING.has(l.state)) return [];
  switch (l.state) {
    case "mirroring":
      return ["pause", "promote", "failover"];
    case "paused":
      return ["resume", "failover"];
    case "promoted":
    case "failed_over":
      return ["reverse"];
    default:
      return [];
  }
}

/** `POST .../replication-links/{name}/{action}`: the operation it started. */
function runAction(ws: string, name: string, action: Action): Promise<Operation> {
  const params = { params: { path: { ws, name } } };
  switch (action) {
    case "pause":
      return call(client.POST("/v1/workspaces/{ws}/replication-links/{name}/pause", params));
    case "resume":
      return call(client.POST("/v1/workspaces/{ws}/replication-links/{name}/resume", params));
    case "promote":
      return call(client.POST("/v1/workspaces/{ws}/replication-links/{name}/promote", params));
    case "failover":
      return call(client.POST("/v1/workspaces/{ws}/replication-links/{name}/failover", params));
    case "reverse":
      return call(client.POST("/v1/workspaces/{ws}/replication-links/{name}/reverse", params));
  }
}

export function LinkDetail({ ws, name }: { ws: string; name: string }) {
  const me = useMe();
  const operator = can(me, ws, "operator");
  const queryClient = useQueryClient();
  const link = useQuery({
    queryKey: ["link", ws, name],
    queryFn: () => call(client.GET("/v1/workspaces/{ws}/replication-links/{name}", { params: { path: { ws, name } } })),
    refetchInterval: (q) => (q.state.data && (MOVING.has(q.state.data.state) || q.state.data.operation) ? 1000 : 5000),
  });
  const lag = useLag(ws, name, 2000);
  const [history, setHistory] = useState<{ pair: string; samples: LagSample[] }>({ pair: "", samples: [] });
  const pair = link.data ? `${link.data.source_cluster}>${link.data.target_cluster}` : "";
  useEffect(() => {
    // A reverse swaps the pair: the chart starts again for the new direction.
    if (lag.data && pair)
      setHistory((h) => ({ pair, samples: appendLag(h.pair === pair ? h.samples : [], lag.data, lag.dataUpdatedAt) }));
  }, [lag.data, lag.dataUpdatedAt, pair]);
  const [confirming, setConfirming] = useState<Action | null>(null);
  const [opId, setOpId] = useState<string | null>(null);
  const act = useMutation({
    mutationFn: (action: Action) => runAction(ws, name, action),
    onSuccess: (op) => {
      setConfirming(null);
      setOpId(op.id);
      void queryClient.invalidateQueries({ queryKey: ["link", ws, name] });
      void queryClient.invalidateQueries({ queryKey: ["links", ws] });
    },
  });
  const l = link.data;
  const shownOp = opId ?? l?.operation ?? null;
  const status = lag.data ?? l?.status ?? undefined;
  const series = lagSeries(history.samples);
  return (
    <main id="main">
      <p className="crumbs">
        <Link to={pathOf("workspaces", ws)}>{ws}</Link> / <Link to={linkPath(ws)}>Replication links</Link> / {name}
      </p>
      <div className="title-row">
        <h1>Link {name}</h1>
        {l ? <Badge state={l.state} /> : null}
      </div>
      <ProblemView error={link.error} context="Cannot read the link" />
      {l ? (
        <>
          <dl className="facts">
            <dt>Source (primary)</dt>
            <dd data-testid="link-source">
              <Link to={pathOf("workspaces", ws, "clusters", l.source_cluster)}>{l.source_cluster}</Link>
            </dd>
            <dt>Target (mirrors)</dt>
            <dd data-testid="link-target">
              <Link to={pathOf("workspaces", ws, "clusters", l.target_cluster)}>{l.target_cluster}</Link>
            </dd>
            <dt>Topics</dt>
            <dd>
              {l.topics.join(", ")}
              {l.topics_exclude?.length ? <span className="muted"> (not {l.topics_exclude.join(", ")})</span> : null}
            </dd>
            <dt>Consumer groups</dt>
            <dd>
              {l.groups?.length ? l.groups.join(", ") : "none"}
              {l.groups_exclude?.length ? <span className="muted"> (not {l.groups_exclude.join(", ")})</span> : null}
            </dd>
            <dt>Reads the source as</dt>
            <dd>{l.source_user ? <code>{l.source_user}</code> : "no user (unsecured source)"}</dd>
            <dt>On the target's brokers</dt>
            <dd data-testid="link-applied">{l.applied ? "applied" : "not yet applied"}</dd>
            <dt>Created</dt>
            <dd>
              by {l.created_by}, {ago(l.created_at)}
            </dd>
          </dl>
          <LinkStatus status={status} error={lag.error} />
          {history.samples.length > 0 ? (
            <div className="charts">
              <Chart
                title="Lag (records behind)"
                testId="lag-records-chart"
                time={series.time}
                series={[{ label: "records", values: series.records, color: "#0b5cad" }]}
              />
              <Chart
                title="Recovery point (seconds behind)"
                testId="lag-seconds-chart"
                time={series.time}
                unit="s"
                series={[{ label: "seconds", values: series.seconds, color: "#a4161a" }]}
              />
            </div>
          ) : null}
          {shownOp ? <LinkOperation id={shownOp} ws={ws} name={name} /> : null}
          {operator ? (
            <section aria-labelledby="link-actions">
              <h2 id="link-actions">Operations</h2>
              {actionsFor(l).length === 0 ? (
                <p className="muted">
                  {l.operation || MOVING.has(l.state)
                    ? "An operation is running on the link."
                    : "No operation applies in this state."}
                </p>
              ) : (
                <div className="buttons-row">
                  {actionsFor(l).map((a) => (
                    <button
                      key={a}
                      type="button"
                      className={a === "failover" ? "danger" : undefined}
                      aria-expanded={confirming === a}
                      onClick={() => {
                        act.reset();
                        setConfirming(a);
                      }}
                    >
                      {ACTION_LABEL[a]}…
                    </button>
                  ))}
                </div>
              )}
              {confirming ? (
                <div className="confirm" role="group" aria-labelledby="confirm-title">
                  <h3 id="confirm-title">
                    {ACTION_LABEL[confirming]} link {name}?
                  </h3>
                  <p data-testid="confirm-explanation">{explain(confirming, l, status)}</p>
                  <div className="buttons-row">
                    <button
                      type="button"
                      className={confirming === "failover" ? "danger" : "primary"}
                      disabled={act.isPending}
                      onClick={() => act.mutate(confirming)}
                    >
                      Confirm: {ACTION_LABEL[confirming].toLowerCase()}
                    </button>
                    <button type="button" onClick={() => setConfirming(null)}>
                      Cancel
                    </button>
                  </div>
                </div>
              ) : null}
              <ProblemView error={act.error} context="Refused" />
              <DeleteLink ws={ws} link={l} />
            </section>
          ) : null}
        </>
      ) : null}
    </main>
  );
}

function LinkStatus({ status, error }: { status: ReplicationLinkStatus | undefined; error: unknown }) {
  return (
    <section aria-labelledby="link-status">
      <h2 id="link-status">Status</h2>
      <ProblemView error={error} context="Cannot read the lag" />
      {status ? (
        <>
          {status.error ? (
            <p className="problem" role="alert">
              {status.error}
            </p>
          ) : null}
          {(status.warnings ?? []).map((w) => (
            <p key={w} className="notice" role="note">
              {w}
            </p>
          ))}
          <dl className="facts">
            <dt>Lag</dt>
            <dd data-testid="lag-records">{status.lag_records ?? "—"}</dd>
            <dt>Bytes behind (estimate)</dt>
            <dd>{status.lag_bytes == null ? "—" : bytes(status.lag_bytes)}</dd>
            <dt>Recovery point now</dt>
            <dd data-testid="rpo">
              {lagSeconds(status.rpo_seconds)}{" "}
              <span className="muted">(what a failover now would lose at most, in time)</span>
            </dd>
            <dt>Brokers say</dt>
            <dd data-testid="data-plane">
              {status.defined ? (status.data_plane_state ?? "—") : "link not defined on the target"}
              {status.data_plane_status ? ` · ${status.data_plane_status}` : ""}
              {!status.observed ? " · target not answering" : ""}
            </dd>
          </dl>
          {!status.partitions_reported ? <p className="muted">The target's brokers do not report per-partition status.</p> : null}
          {(status.topics ?? []).length > 0 ? (
            <div className="scroll">
              <table data-testid="mirror-partitions">
                <caption>Mirror topics and partitions</caption>
                <thead>
                  <tr>
                    <th scope="col">Topic</th>
                    <th scope="col">Partition</th>
                    <th scope="col">State</th>
                    <th scope="col">Mirror end</th>
                    <th scope="col">Source end</th>
                    <th scope="col">Lag (records)</th>
                    <th scope="col">Lag (time)</th>
                    <th scope="col">Stopped at</th>
                    <th scope="col">Lost</th>
                  </tr>
                </thead>
                <tbody>
                  {(status.topics ?? []).flatMap((t) => [
                    <tr key={t.topic} className="topic-row" data-topic={t.topic}>
                      <th scope="row">{t.topic}</th>
                      <td>all</td>
                      <td>
                        <Badge state={t.state} />
                      </td>
                      <td />
                      <td />
                      <td>{t.lag_records}</td>
                      <td>{lagSeconds(t.lag_seconds)}</td>
                      <td />
                      <td />
                    </tr>,
                    ...t.partitions.map((p) => (
                      <tr key={`${t.topic}-${p.partition}`} data-partition={`${t.topic}/${p.partition}`}>
                        <td className="muted">{t.topic}</td>
                        <td>{p.partition}</td>
                        <td>
                          <Badge state={p.state} />
                          {p.reason ? <span className="muted"> {p.reason}</span> : null}
                        </td>
                        <td>{p.log_end ?? "—"}</td>
                        <td>{p.source_end ?? "—"}</td>
                        <td>{p.lag_records ?? "—"}</td>
                        <td>{lagSeconds(p.lag_seconds)}</td>
                        <td>{p.stop_offset ?? "—"}</td>
                        <td>
                          {p.loss_records == null ? "—" : `${p.loss_records} records`}
                          {p.loss_seconds != null ? `, ${lagSeconds(p.loss_seconds)}` : ""}
                        </td>
                      </tr>
                    )),
                  ])}
                </tbody>
              </table>
            </div>
          ) : null}
        </>
      ) : null}
    </section>
  );
}

/** A link operation, polled until it ends, with what it measured. */
function LinkOperation({ id, ws, name }: { id: string; ws: string; name: string }) {
  const queryClient = useQueryClient();
  const op = useQuery({
    queryKey: ["operation", id],
    queryFn: () => call(client.GET("/v1/operations/{id}", { params: { path: { id } } })),
    refetchInterval: (q) => (q.state.data && q.state.data.state !== "Running" ? false : 1000),
  });
  const done = op.data && op.data.state !== "Running";
  useEffect(() => {
    if (done) {
      void queryClient.invalidateQueries({ queryKey: ["link", ws, name] });
      void queryClient.invalidateQueries({ queryKey: ["link-lag", ws, name] });
    }
  }, [done, queryClient, ws, name]);
  return (
    <section aria-labelledby="link-operation" data-testid="link-operation">
      <h2 id="link-operation">Last operation</h2>
      <ProblemView error={op.error} context="Cannot read the operation" />
      {op.data ? (
        <>
          <OperationView op={op.data} open />
          <OperationResult op={op.data} />
        </>
      ) : null}
    </section>
  );
}

function OperationResult({ op }: { op: Operation }) {
  const r = op.result;
  if (!r) return null;
  return (
    <div className="notice" data-testid="operation-result">
      {op.kind === "link_failover" || op.kind === "link_promote" ? (
        <p>
          Loss bound: <strong data-testid="loss-records">{r.loss_records}</strong> records,{" "}
          <strong>{r.loss_ms}</strong> ms of the source's records are not on the target.
        </p>
      ) : null}
      {op.kind === "link_reverse" ? <p>Quarantined: {r.quarantined_records} records.</p> : null}
      {r.partitions.length > 0 ? (
        <table>
          <caption>Where mirroring stopped</caption>
          <thead>
            <tr>
              <th scope="col">Topic</th>
              <th scope="col">Partition</th>
              <th scope="col">Stop offset</th>
              <th scope="col">Lost records</th>
              <th scope="col">Lost ms</th>
              <th scope="col">Quarantined</th>
            </tr>
          </thead>
          <tbody>
            {r.partitions.map((p) => (
              <tr key={`${p.topic}-${p.partition}`}>
                <td>{p.topic}</td>
                <td>{p.partition}</td>
                <td data-testid="stop-offset">{p.stop_offset ?? "—"}</td>
                <td>{p.loss_records ?? "—"}</td>
                <td>{p.loss_ms ?? "—"}</td>
                <td>{p.quarantined ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}

function DeleteLink({ ws, link }: { ws: string; link: ReplicationLink }) {
  const queryClient = useQueryClient();
  const [confirm, setConfirm] = useState("");
  const [refusedIn, setRefusedIn] = useState<string | null>(null);
  const remove = useMutation({
    mutationFn: () =>
      call(client.DELETE("/v1/workspaces/{ws}/replication-links/{name}", { params: { path: { ws, name: link.name } } })),
    onMutate: () => setRefusedIn(link.state),
    onSuccess: () => {
      // The list must not show (and poll the lag of) the deleted link until it is read again.
      queryClient.setQueriesData<{ items: ReplicationLink[] }>({ queryKey: ["links", ws] }, (old) =>
        old ? { ...old, items: old.items.filter((l) => l.name !== link.name) } : old,
      );
      queryClient.removeQueries({ queryKey: ["link-lag", ws, link.name] });
      void queryClient.invalidateQueries({ queryKey: ["links", ws] });
      navigate(linkPath(ws));
    },
  });
  return (
    <section aria-labelledby="delete-link" className="danger">
      <h2 id="delete-link">Delete</h2>
      <p className="muted">
        Removes the link from {link.target_cluster}'s brokers and its Kafka user from {link.source_cluster}. A link that
        still feeds mirror topics cannot be deleted: promote it or fail it over first.
      </p>
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          remove.mutate();
        }}
      >
        <div className="field">
          <label htmlFor="delete-link-confirm">Type the link's name to delete it</label>
          <input id="delete-link-confirm" value={confirm} onChange={(e) => setConfirm(e.target.value)} />
        </div>
        <button type="submit" className="danger" disabled={confirm !== link.name || remove.isPending}>
          Delete link
        </button>
      </form>
      {/* A refusal is about the state it was refused in. */}
      {remove.error && refusedIn === link.state ? <ProblemView error={remove.error} context="Delete refused" /> : null}
    </section>
  );
}
