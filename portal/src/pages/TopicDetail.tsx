/**
 * One topic: partitions with leaders, ISR and offsets, its configs, the live tail and a form to
 * produce a record.
 */
import { useState, type FormEvent } from "react";
import { useMutation, useQuery } from "@tanstack/react-query";
import { call, client } from "../api/client";
import { useMe } from "../auth";
import { Link } from "../components/nav";
import { ProblemView } from "../components/ProblemView";
import { can } from "../lib/roles";
import { pathOf } from "../lib/route";
import { ClusterFrame } from "./ClusterDetail";
import { Tail } from "./Tail";
import { parseConfigs } from "./Topics";

export function TopicDetail({ ws, cluster, topic }: { ws: string; cluster: string; topic: string }) {
  const me = useMe();
  // While a tail runs, the offsets move: read them every second instead of every 5 s.
  const [tailing, setTailing] = useState(false);
  const detail = useQuery({
    queryKey: ["topic", ws, cluster, topic],
    queryFn: () =>
      call(client.GET("/v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}", { params: { path: { ws, cluster, topic } } })),
    refetchInterval: tailing ? 1000 : 5000,
  });
  const t = detail.data;
  const partitions = t?.partitions ?? [];
  return (
    <ClusterFrame ws={ws} name={cluster} tab="topics">
      {() => (
        <>
          <p className="crumbs">
            <Link to={pathOf("workspaces", ws, "clusters", cluster, "topics")}>Topics</Link> / {topic}
          </p>
          <h2>Topic {topic}</h2>
          <ProblemView error={detail.error} context="Cannot read the topic" />
          {t ? (
            <div className="two-col">
              <section aria-labelledby="partitions">
                <h3 id="partitions">Partitions</h3>
                <table data-testid="partitions">
                  <thead>
                    <tr>
                      <th scope="col">Partition</th>
                      <th scope="col">Leader</th>
                      <th scope="col">Replicas</th>
                      <th scope="col">In sync</th>
                      <th scope="col">Start offset</th>
                      <th scope="col">End offset</th>
                    </tr>
                  </thead>
                  <tbody>
                    {partitions.map((p) => (
                      <tr key={p.partition}>
                        <td>{p.partition}</td>
                        <td>{p.leader ?? "none"}</td>
                        <td>{p.replicas.join(", ")}</td>
                        <td>{p.isr.join(", ")}</td>
                        <td>{p.start_offset ?? "—"}</td>
                        <td>{p.end_offset ?? "—"}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </section>
              <section aria-labelledby="configs">
                <h3 id="configs">Configs</h3>
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Key</th>
                      <th scope="col">Value</th>
                    </tr>
                  </thead>
                  <tbody>
                    {Object.entries(t.configs ?? {}).map(([k, v]) => (
                      <tr key={k} className="set">
                        <td>{k}</td>
                        <td>{v}</td>
                      </tr>
                    ))}
                    {Object.entries(t.default_configs ?? {})
                      .slice(0, 12)
                      .map(([k, v]) => (
                        <tr key={k} className="muted">
                          <td>{k}</td>
                          <td>{v} (default)</td>
                        </tr>
                      ))}
                  </tbody>
                </table>
              </section>
            </div>
          ) : null}
          <Tail ws={ws} cluster={cluster} topic={topic} partitions={partitions.length} onRunning={setTailing} />
          {can(me, ws, "operator") ? <Produce ws={ws} cluster={cluster} topic={topic} /> : null}
        </>
      )}
    </ClusterFrame>
  );
}

function Produce({ ws, cluster, topic }: { ws: string; cluster: string; topic: string }) {
  const [partition, setPartition] = useState("");
  const [key, setKey] = useState("");
  const [value, setValue] = useState("");
  const [headers, setHeaders] = useState("");
  const produce = useMutation({
    mutationFn: () =>
      call(
        client.POST("/v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}/records", {
          params: { path: { ws, cluster, topic } },
          body: {
            partition: partition === "" ? undefined : Number(partition),
            key: key === "" ? undefined : key,
            value,
            headers: headers.trim() ? parseConfigs(headers) : undefined,
          },
        }),
      ),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    produce.mutate();
  };
  return (
    <section aria-labelledby="produce">
      <h3 id="produce">Produce a record</h3>
      <form onSubmit={submit} className="form" aria-label="Produce a record">
        <div className="field">
          <label htmlFor="produce-partition">Partition (empty: by key)</label>
          <input id="produce-partition" type="number" min={0} value={partition} onChange={(e) => setPartition(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="produce-key">Key</label>
          <input id="produce-key" value={key} onChange={(e) => setKey(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="produce-value">Value</label>
          <textarea id="produce-value" rows={3} value={value} onChange={(e) => setValue(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="produce-headers">Headers (key=value, one per line)</label>
          <textarea id="produce-headers" rows={2} value={headers} onChange={(e) => setHeaders(e.target.value)} />
        </div>
        <button type="submit" disabled={produce.isPending}>
          Produce
        </button>
        {produce.data ? (
          <p role="status" className="ok-text">
            Written to partition {produce.data.partition} at offset {produce.data.offset}.
          </p>
        ) : null}
        <ProblemView error={produce.error} context="Produce refused" />
      </form>
    </section>
  );
}
