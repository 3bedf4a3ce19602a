/** A Spark cluster's streaming SQL jobs: the list and the submit form. */
import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { call, client } from "../api/client";
import { useMe } from "../auth";
import { Badge } from "../components/Badge";
import { Field } from "../components/Field";
import { Link, navigate } from "../components/nav";
import { Pager, usePageTokens } from "../components/Pager";
import { ProblemView } from "../components/ProblemView";
import { SqlEditor } from "../components/SqlEditor";
import { fieldError, toProblem } from "../lib/problem";
import { can } from "../lib/roles";
import { pathOf } from "../lib/route";
import { ClusterFrame } from "./ClusterDetail";

export function Jobs({ ws, cluster }: { ws: string; cluster: string }) {
  const me = useMe();
  const paging = usePageTokens();
  const list = useQuery({
    queryKey: ["jobs", ws, cluster, paging.token],
    queryFn: () =>
      call(
        client.GET("/v1/workspaces/{ws}/clusters/{cluster}/jobs", {
          params: { path: { ws, cluster }, query: { page_token: paging.token } },
        }),
      ),
    refetchInterval: 5000,
  });
  return (
    <ClusterFrame ws={ws} name={cluster} tab="jobs">
      {() => (
        <>
          <ProblemView error={list.error} context="Cannot list jobs" />
          {list.data ? (
            list.data.items.length === 0 ? (
              <p>No jobs yet.</p>
            ) : (
              <table>
                <caption className="sr-only">Jobs</caption>
                <thead>
                  <tr>
                    <th scope="col">Job</th>
                    <th scope="col">State</th>
                    <th scope="col">Batches</th>
                    <th scope="col">Kafka cluster</th>
                    <th scope="col">Submitted by</th>
                  </tr>
                </thead>
                <tbody>
                  {list.data.items.map((j) => (
                    <tr key={j.id}>
                      <td>
                        <Link to={pathOf("workspaces", ws, "clusters", cluster, "jobs", j.name)}>{j.name}</Link>
                      </td>
                      <td>
                        <Badge state={j.status.state} />
                      </td>
                      <td>{j.status.batches_committed ?? 0}</td>
                      <td>{j.kafka_cluster ?? "—"}</td>
                      <td>{j.created_by}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )
          ) : null}
          <Pager
            label="Jobs"
            page={paging.page}
            nextToken={list.data?.next_page_token}
            onNext={paging.next}
            onPrevious={paging.previous}
          />
          {can(me, ws, "operator") ? <SubmitJob ws={ws} cluster={cluster} /> : null}
        </>
      )}
    </ClusterFrame>
  );
}

function SubmitJob({ ws, cluster }: { ws: string; cluster: string }) {
  const queryClient = useQueryClient();
  const [name, setName] = useState("");
  const [kafka, setKafka] = useState("");
  const [sql, setSql] = useState("");
  const kafkaClusters = useQuery({
    queryKey: ["clusters", ws, "all-kafka"],
    queryFn: () => call(client.GET("/v1/workspaces/{ws}/clusters", { params: { path: { ws }, query: { page_size: 500 } } })),
    select: (list) => list.items.filter((c) => c.spec.kind === "kafka").map((c) => c.name),
  });
  const submit = useMutation({
    mutationFn: () =>
      call(
        client.POST("/v1/workspaces/{ws}/clusters/{cluster}/jobs", {
          params: { path: { ws, cluster } },
          body: { name, sql, kafka_cluster: kafka || undefined },
        }),
      ),
    onSuccess: (job) => {
      void queryClient.invalidateQueries({ queryKey: ["jobs", ws, cluster] });
      navigate(pathOf("workspaces", ws, "clusters", cluster, "jobs", job.name));
    },
  });
  const problem = submit.error ? toProblem(submit.error) : null;
  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    submit.mutate();
  };
  const sqlProblem = problem?.code === "invalid_sql" || fieldError(problem, "sql") ? problem : null;
  return (
    <section aria-labelledby="submit-job">
      <h2 id="submit-job">Submit a job</h2>
      <form onSubmit={onSubmit} className="form wide" aria-label="Submit job">
        <Field label="Job name" name="name" problem={problem}>
          {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} required />}
        </Field>
        <Field label="Kafka cluster (for Kafka sources and sinks)" name="kafka_cluster" problem={problem}>
          {(p) => (
            <select {...p} value={kafka} onChange={(e) => setKafka(e.target.value)}>
              <option value="">None</option>
              {(kafkaClusters.data ?? []).map((c) => (
                <option key={c} value={c}>
                  {c}
                </option>
              ))}
            </select>
          )}
        </Field>
        <div className="field">
          <label htmlFor="job-sql">SQL</label>
          <SqlEditor id="job-sql" value={sql} onChange={setSql} problem={sqlProblem} />
          {sqlProblem && !sqlProblem.line ? (
            <span className="field-error" role="alert">
              {sqlProblem.detail ?? sqlProblem.title}
            </span>
          ) : null}
          <span className="hint">CREATE TABLE … WITH (connector = …); then INSERT INTO … SELECT …</span>
        </div>
        {problem && !sqlProblem && !fieldError(problem, "name") && !fieldError(problem, "kafka_cluster") ? (
          <ProblemView error={submit.error} context="Submit refused" />
        ) : null}
        {sqlProblem ? (
          <p className="muted">
            code <code>{sqlProblem.code}</code> · {sqlProblem.title}
          </p>
        ) : null}
        <button type="submit" className="primary" disabled={submit.isPending}>
          Submit job
        </button>
      </form>
    </section>
  );
}
