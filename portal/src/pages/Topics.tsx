/** A Kafka cluster's topics: the paginated list and the create form. */
import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { call, client } from "../api/client";
import { useMe } from "../auth";
import { Field } from "../components/Field";
import { Link, navigate } from "../components/nav";
import { Pager, usePageTokens } from "../components/Pager";
import { ProblemView } from "../components/ProblemView";
import { fieldError, toProblem } from "../lib/problem";
import { can } from "../lib/roles";
import { pathOf } from "../lib/route";
import { ClusterFrame } from "./ClusterDetail";

export function Topics({ ws, cluster }: { ws: string; cluster: string }) {
  const me = useMe();
  const paging = usePageTokens();
  const list = useQuery({
    queryKey: ["topics", ws, cluster, paging.token],
    queryFn: () =>
      call(
        client.GET("/v1/workspaces/{ws}/clusters/{cluster}/topics", {
          params: { path: { ws, cluster }, query: { page_token: paging.token } },
        }),
      ),
    refetchInterval: 10_000,
  });
  return (
    <ClusterFrame ws={ws} name={cluster} tab="topics">
      {() => (
        <>
          <ProblemView error={list.error} context="Cannot list topics" />
          {list.data ? (
            list.data.items.length === 0 ? (
              <p>No topics yet.</p>
            ) : (
              <table>
                <caption className="sr-only">Topics</caption>
                <thead>
                  <tr>
                    <th scope="col">Topic</th>
                    <th scope="col">Partitions</th>
                    <th scope="col">Replication factor</th>
                    <th scope="col">Under-replicated</th>
                  </tr>
                </thead>
                <tbody>
                  {list.data.items.map((t) => (
                    <tr key={t.name}>
                      <td>
                        <Link to={pathOf("workspaces", ws, "clusters", cluster, "topics", t.name)}>{t.name}</Link>
                      </td>
                      <td>{t.partitions.length}</td>
                      <td>{t.replication_factor}</td>
                      <td>{t.partitions.filter((p) => p.isr.length < p.replicas.length).length}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )
          ) : null}
          <Pager
            label="Topics"
            page={paging.page}
            nextToken={list.data?.next_page_token}
            onNext={paging.next}
            onPrevious={paging.previous}
          />
          {can(me, ws, "operator") ? <CreateTopic ws={ws} cluster={cluster} /> : null}
        </>
      )}
    </ClusterFrame>
  );
}

const TOPIC_FIELDS = ["name", "partitions", "replication_factor", "configs"];

function CreateTopic({ ws, cluster }: { ws: string; cluster: string }) {
  const queryClient = useQueryClient();
  const [name, setName] = useState("");
  const [partitions, setPartitions] = useState(3);
  const [rf, setRf] = useState(3);
  const [configs, setConfigs] = useState("");
  const create = useMutation({
    mutationFn: () =>
      call(
        client.POST("/v1/workspaces/{ws}/clusters/{cluster}/topics", {
          params: { path: { ws, cluster } },
          body: { name, partitions, replication_factor: rf, configs: parseConfigs(configs) },
        }),
      ),
    onSuccess: (topic) => {
      void queryClient.invalidateQueries({ queryKey: ["topics", ws, cluster] });
      navigate(pathOf("workspaces", ws, "clusters", cluster, "topics", topic.name));
    },
  });
  const problem = create.error ? toProblem(create.error) : null;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate();
  };
  return (
    <section aria-labelledby="create-topic">
      <h2 id="create-topic">Create a topic</h2>
      <form onSubmit={submit} className="form" aria-label="Create topic">
        <Field label="Topic name" name="name" problem={problem}>
          {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} required />}
        </Field>
        <Field label="Partitions" name="partitions" problem={problem}>
          {(p) => <input {...p} type="number" min={1} value={partitions} onChange={(e) => setPartitions(Number(e.target.value))} />}
        </Field>
        <Field label="Replication factor" name="replication_factor" problem={problem}>
          {(p) => <input {...p} type="number" min={1} value={rf} onChange={(e) => setRf(Number(e.target.value))} />}
        </Field>
        <Field label="Configs (key=value, one per line)" name="configs" problem={problem}>
          {(p) => <textarea {...p} rows={3} value={configs} onChange={(e) => setConfigs(e.target.value)} />}
        </Field>
        {problem && !TOPIC_FIELDS.some((f) => fieldError(problem, f)) ? <ProblemView error={create.error} /> : null}
        <button type="submit" className="primary" disabled={create.isPending}>
          Create topic
        </button>
      </form>
    </section>
  );
}

/** `key=value` lines as a map (blank lines skipped). */
export function parseConfigs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    const eq = trimmed.indexOf("=");
    if (eq < 0) out[trimmed] = "";
    else out[trimmed.slice(0, eq).trim()] = trimmed.slice(eq + 1).trim();
  }
  return out;
}
