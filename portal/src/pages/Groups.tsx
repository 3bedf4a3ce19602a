/**
 * Consumer groups of a Kafka cluster: the list with total lag, and a group's members,
 * assignment, per-partition committed offset, end offset and lag, its lag over time (the control
 * plane's samples), reset offsets of an empty group and delete.
 */
import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { call, client } from "../api/client";
import type { ConsumerGroupResetOffsets } from "../api/types";
import { useMe } from "../auth";
import { Badge } from "../components/Badge";
import { Chart } from "../components/Chart";
import { Link, navigate } from "../components/nav";
import { Pager, usePageTokens } from "../components/Pager";
import { ProblemView } from "../components/ProblemView";
import { can } from "../lib/roles";
import { pathOf } from "../lib/route";
import { ClusterFrame } from "./ClusterDetail";
import { useClusterMetrics } from "../api/metrics";

export function Groups({ ws, cluster }: { ws: string; cluster: string }) {
  const paging = usePageTokens();
  const list = useQuery({
    queryKey: ["groups", ws, cluster, paging.token],
    queryFn: () =>
      call(
        client.GET("/v1/workspaces/{ws}/clusters/{cluster}/consumer-groups", {
          params: { path: { ws, cluster }, query: { page_token: paging.token } },
        }),
      ),
    refetchInterval: 5000,
  });
  return (
    <ClusterFrame ws={ws} name={cluster} tab="groups">
      {() => (
        <>
          <ProblemView error={list.error} context="Cannot list consumer groups" />
          {list.data ? (
            list.data.items.length === 0 ? (
              <p>No consumer groups.</p>
            ) : (
              <table data-testid="groups">
                <caption className="sr-only">Consumer groups</caption>
                <thead>
                  <tr>
                    <th scope="col">Group</th>
                    <th scope="col">State</th>
                    <th scope="col">Members</th>
                    <th scope="col">Total lag</th>
                    <th scope="col">Assignor</th>
                  </tr>
                </thead>
                <tbody>
                  {list.data.items.map((g) => (
                    <tr key={g.group_id} data-group={g.group_id}>
                      <td>
                        <Link to={pathOf("workspaces", ws, "clusters", cluster, "consumer-groups", g.group_id)}>{g.group_id}</Link>
                      </td>
                      <td>
                        <Badge state={g.state} />
                      </td>
                      <td>{g.members}</td>
                      <td data-testid="total-lag">{g.total_lag}</td>
                      <td>{g.assignor ?? "—"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )
          ) : null}
          <Pager label="Consumer groups" page={paging.page} nextToken={list.data?.next_page_token} onNext={paging.next} onPrevious={paging.previous} />
        </>
      )}
    </ClusterFrame>
  );
}

export function GroupDetail({ ws, cluster, group }: { ws: string; cluster: string; group: string }) {
  const me = useMe();
  const operator = can(me, ws, "operator");
  const detail = useQuery({
    queryKey: ["group", ws, cluster, group],
    queryFn: () =>
      call(client.GET("/v1/workspaces/{ws}/clusters/{cluster}/consumer-groups/{group}", { params: { path: { ws, cluster, group } } })),
    refetchInterval: 3000,
  });
  const metrics = useClusterMetrics(ws, cluster);
  const series = metrics.data?.groups.find((g) => g.group_id === group);
  const g = detail.data;
  return (
    <ClusterFrame ws={ws} name={cluster} tab="groups">
      {() => (
        <>
          <p className="crumbs">
            <Link to={pathOf("workspaces", ws, "clusters", cluster, "consumer-groups")}>Consumer groups</Link> / {group}
          </p>
          <div className="title-row">
            <h2>Group {group}</h2>
            {g ? <Badge state={g.state} /> : null}
          </div>
          <ProblemView error={detail.error} context="Cannot read the group" />
          {g ? (
            <>
              <dl className="facts">
                <dt>Total lag</dt>
                <dd data-testid="group-total-lag">{g.total_lag}</dd>
                <dt>Members</dt>
                <dd>{g.members.length}</dd>
                <dt>Coordinator</dt>
                <dd>{g.coordinator ?? "—"}</dd>
                <dt>Assignor</dt>
                <dd>{g.assignor ?? "—"}</dd>
              </dl>
              <h3>Lag per partition</h3>
              <table data-testid="group-offsets">
                <thead>
                  <tr>
                    <th scope="col">Topic</th>
                    <th scope="col">Partition</th>
                    <th scope="col">Committed offset</th>
                    <th scope="col">End offset</th>
                    <th scope="col">Lag</th>
                    <th scope="col">Member</th>
                  </tr>
                </thead>
                <tbody>
                  {g.offsets.map((o) => (
                    <tr key={`${o.topic}:${o.partition}`} data-topic={o.topic} data-partition={o.partition} data-lag={o.lag ?? ""}>
                      <td>{o.topic}</td>
                      <td>{o.partition}</td>
                      <td>{o.committed_offset ?? "—"}</td>
                      <td>{o.end_offset ?? "—"}</td>
                      <td>{o.lag ?? "—"}</td>
                      <td className="mono">{o.member_id ?? ""}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {g.members.length > 0 ? (
                <>
                  <h3>Members</h3>
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">Member</th>
                        <th scope="col">Client</th>
                        <th scope="col">Host</th>
                        <th scope="col">Assignment</th>
                      </tr>
                    </thead>
                    <tbody>
                      {g.members.map((m) => (
                        <tr key={m.member_id}>
                          <td className="mono">{m.member_id}</td>
                          <td>{m.client_id}</td>
                          <td>{m.client_host}</td>
                          <td>{m.assignment.map((a) => `${a.topic}[${a.partitions.join(",")}]`).join(" ")}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </>
              ) : null}
            </>
          ) : null}
          {metrics.data && series ? (
            <Chart
              title="Total lag (records)"
              testId="chart-group-lag"
              unit="records"
              time={metrics.data.timestamps_ms.map((t) => t / 1000)}
              series={[{ label: "lag", values: series.total_lag, color: "#e66101" }]}
            />
          ) : null}
          {operator && g ? <ResetAndDelete ws={ws} cluster={cluster} group={group} /> : null}
        </>
      )}
    </ClusterFrame>
  );
}

function ResetAndDelete({ ws, cluster, group }: { ws: string; cluster: string; group: string }) {
  const queryClient = useQueryClient();
  const [to, setTo] = useState<ConsumerGroupResetOffsets["to"]>("earliest");
  const [offset, setOffset] = useState("0");
  const [time, setTime] = useState("");
  const [dryRun, setDryRun] = useState(true);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const reset = useMutation({
    mutationFn: () =>
      call(
        client.POST("/v1/workspaces/{ws}/clusters/{cluster}/consumer-groups/{group}/reset-offsets", {
          params: { path: { ws, cluster, group } },
          body: {
            to,
            offset: to === "offset" ? Number(offset) : undefined,
            timestamp_ms: to === "timestamp" ? Date.parse(time) : undefined,
            dry_run: dryRun,
          },
        }),
      ),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["group", ws, cluster, group] }),
  });
  const remove = useMutation({
    mutationFn: () =>
      call(client.DELETE("/v1/workspaces/{ws}/clusters/{cluster}/consumer-groups/{group}", { params: { path: { ws, cluster, group } } })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ["groups", ws, cluster] });
      navigate(pathOf("workspaces", ws, "clusters", cluster, "consumer-groups"));
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    reset.mutate();
  };
  return (
    <section aria-labelledby="reset">
      <h3 id="reset">Reset offsets</h3>
      <p className="hint">Only while the group has no active members.</p>
      <form onSubmit={submit} className="inline-form" aria-label="Reset offsets">
        <div className="field">
          <label htmlFor="reset-to">To</label>
          <select id="reset-to" value={to} onChange={(e) => setTo(e.target.value as ConsumerGroupResetOffsets["to"])}>
            <option value="earliest">Earliest</option>
            <option value="latest">Latest</option>
            <option value="offset">Offset</option>
            <option value="timestamp">Time</option>
          </select>
        </div>
        {to === "offset" ? (
          <div className="field">
            <label htmlFor="reset-offset">Offset</label>
            <input id="reset-offset" type="number" min={0} value={offset} onChange={(e) => setOffset(e.target.value)} />
          </div>
        ) : null}
        {to === "timestamp" ? (
          <div className="field">
            <label htmlFor="reset-time">Time</label>
            <input id="reset-time" type="datetime-local" step={1} value={time} onChange={(e) => setTime(e.target.value)} />
          </div>
        ) : null}
        <div className="field checkbox">
          <input id="reset-dry" type="checkbox" checked={dryRun} onChange={(e) => setDryRun(e.target.checked)} />
          <label htmlFor="reset-dry">Dry run (show, do not commit)</label>
        </div>
        <button type="submit">{dryRun ? "Show the reset" : "Reset offsets"}</button>
      </form>
      <ProblemView error={reset.error} context="Reset refused" />
      {reset.data ? (
        <table data-testid="reset-result">
          <caption>{reset.data.dry_run ? "Offsets a reset would commit" : "Offsets committed"}</caption>
          <thead>
            <tr>
              <th scope="col">Topic</th>
              <th scope="col">Partition</th>
              <th scope="col">Before</th>
              <th scope="col">After</th>
            </tr>
          </thead>
          <tbody>
            {reset.data.offsets.map((o) => (
              <tr key={`${o.topic}:${o.partition}`}>
                <td>{o.topic}</td>
                <td>{o.partition}</td>
                <td>{o.previous_offset ?? "—"}</td>
                <td>{o.new_offset}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <h3>Delete the group</h3>
      {confirmDelete ? (
        <div className="confirm" role="group" aria-label={`Delete group ${group}`}>
          <p>
            Deleting {group} removes its committed offsets: a consumer that joins it again starts where its
            auto.offset.reset says, not where the group stopped.
          </p>
          <div className="buttons-row">
            <button type="button" className="danger" onClick={() => remove.mutate()} disabled={remove.isPending}>
              Confirm: delete group {group}
            </button>
            <button type="button" onClick={() => setConfirmDelete(false)}>
              Cancel
            </button>
          </div>
        </div>
      ) : (
        <button type="button" className="danger" onClick={() => setConfirmDelete(true)}>
          Delete group {group}…
        </button>
      )}
      <ProblemView error={remove.error} context="Delete refused" />
    </section>
  );
}
