/**
 * A Kafka cluster's users (SCRAM principals `User:<name>` with ACLs and quotas): the list, the
 * create form (ACLs one per line as `hdictl kafka-user create --allow` takes them), the password
 * of a create or a rotate shown this once, rotate and delete behind a confirm step. Users named
 * `hdi-…` are the platform's (e.g. a replication link's reader): listed, never offered controls.
 */
import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { call, client } from "../api/client";
import type { KafkaUser, KafkaUserCredential } from "../api/types";
import { useMe } from "../auth";
import { Badge } from "../components/Badge";
import { Field } from "../components/Field";
import { ProblemView } from "../components/ProblemView";
import { aclText, parseAcls } from "../lib/acl";
import { ago } from "../lib/format";
import { fieldError, toProblem, type Problem } from "../lib/problem";
import { can } from "../lib/roles";
import { ClusterFrame } from "./ClusterDetail";

function quotasText(u: KafkaUser): string {
  const q = u.quotas;
  if (!q) return "none";
  const set = [
    q.producer_byte_rate != null ? `produce ${q.producer_byte_rate} B/s` : null,
    q.consumer_byte_rate != null ? `fetch ${q.consumer_byte_rate} B/s` : null,
    q.request_percentage != null ? `${q.request_percentage}% request time` : null,
  ].filter(Boolean);
  return set.length ? set.join(", ") : "none";
}

export function KafkaUsers({ ws, cluster }: { ws: string; cluster: string }) {
  return (
    <ClusterFrame ws={ws} name={cluster} tab="kafka-users">
      {() => <UsersBody ws={ws} cluster={cluster} />}
    </ClusterFrame>
  );
}

function UsersBody({ ws, cluster }: { ws: string; cluster: string }) {
  const me = useMe();
  const operator = can(me, ws, "operator");
  const [secret, setSecret] = useState<{ credential: KafkaUserCredential; how: "created" | "rotated" } | null>(null);
  const list = useQuery({
    queryKey: ["kafka-users", ws, cluster],
    queryFn: () =>
      call(client.GET("/v1/workspaces/{ws}/clusters/{cluster}/kafka-users", { params: { path: { ws, cluster } } })),
    refetchInterval: (q) => (q.state.data?.items.some((u) => u.state === "pending") ? 2000 : 10_000),
  });
  return (
    <>
      <h2>Kafka users</h2>
      <p className="muted">
        Clients sign in to the cluster's brokers as these users (SASL SCRAM) and may do what their ACLs allow. Passwords are
        shown once, when set.
      </p>
      {secret ? <Secret {...secret} onDone={() => setSecret(null)} /> : null}
      <ProblemView error={list.error} context="Cannot list Kafka users" />
      {list.data ? (
        list.data.items.length === 0 ? (
          <p>No Kafka users on this cluster yet.</p>
        ) : (
          <table data-testid="kafka-users">
            <caption className="sr-only">Kafka users</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">State</th>
                <th scope="col">ACLs</th>
                <th scope="col">Quotas</th>
                <th scope="col">Password set</th>
                <th scope="col">Created by</th>
                {operator ? <th scope="col">Actions</th> : null}
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((u) => (
                <UserRow
                  key={u.name}
                  ws={ws}
                  cluster={cluster}
                  user={u}
                  operator={operator}
                  onRotated={(credential) => setSecret({ credential, how: "rotated" })}
                />
              ))}
            </tbody>
          </table>
        )
      ) : null}
      {operator ? <CreateUser ws={ws} cluster={cluster} onCreated={(credential) => setSecret({ credential, how: "created" })} /> : null}
    </>
  );
}

/** A password shown this once, with a copy button. */
function Secret({ credential, how, onDone }: { credential: KafkaUserCredential; how: string; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="secret" role="status" data-testid="kafka-user-secret">
      <p>
        <strong>
          Kafka user {credential.user.name} {how}.
        </strong>{" "}
        Its password ({credential.user.mechanism}) is shown this once: store it now. hdi keeps only a salted credential.
      </p>
      <p>
        <code data-testid="kafka-user-password">{credential.password}</code>
      </p>
      <div className="buttons-row">
        <button
          type="button"
          onClick={() =>
            void navigator.clipboard?.writeText(credential.password).then(
              () => setCopied(true),
              () => setCopied(false),
            )
          }
        >
          {copied ? "Copied" : "Copy password"}
        </button>
        <button type="button" onClick={onDone}>
          I have stored it
        </button>
      </div>
    </div>
  );
}

function UserRow({
  ws,
  cluster,
  user: u,
  operator,
  onRotated,
}: {
  ws: string;
  cluster: string;
  user: KafkaUser;
  operator: boolean;
  onRotated: (c: KafkaUserCredential) => void;
}) {
  const queryClient = useQueryClient();
  const [confirming, setConfirming] = useState<"rotate" | "delete" | null>(null);
  const path = { params: { path: { ws, cluster, name: u.name } } };
  const refresh = () => void queryClient.invalidateQueries({ queryKey: ["kafka-users", ws, cluster] });
  const rotate = useMutation({
    mutationFn: () => call(client.POST("/v1/workspaces/{ws}/clusters/{cluster}/kafka-users/{name}/rotate", path)),
    onSuccess: (c) => {
      setConfirming(null);
      onRotated(c);
      refresh();
    },
  });
  const remove = useMutation({
    mutationFn: () => call(client.DELETE("/v1/workspaces/{ws}/clusters/{cluster}/kafka-users/{name}", path)),
    onSuccess: () => {
      setConfirming(null);
      refresh();
    },
  });
  const platforms = u.name.startsWith("hdi-");
  return (
    <tr data-kafka-user={u.name}>
      <td>
        <code>{u.name}</code>
        {platforms ? <span className="muted"> (the platform's)</span> : null}
      </td>
      <td>
        <Badge state={u.state} />
      </td>
      <td>
        {u.acls.length === 0 ? (
          <span className="muted">none</span>
        ) : (
          <ul className="plain">
            {u.acls.map((a, i) => (
              <li key={i}>
                <code>{aclText(a)}</code>
              </li>
            ))}
          </ul>
        )}
      </td>
      <td>{quotasText(u)}</td>
      <td>{ago(u.password_set_at)}</td>
      <td>{u.created_by}</td>
      {operator ? (
        <td>
          {platforms ? (
            <span className="muted">managed by hdi</span>
          ) : confirming ? (
            <div className="confirm small" role="group" aria-label={`${confirming} ${u.name}`}>
              <p>
                {confirming === "rotate"
                  ? `A new password for ${u.name}: the old one stops working at once, so clients using it fail to sign in until they have the new one.`
                  : `Delete ${u.name}: its credential and ACLs leave the cluster; clients signed in as it lose access.`}
              </p>
              <div className="buttons-row">
                <button
                  type="button"
                  className={confirming === "delete" ? "danger" : "primary"}
                  disabled={rotate.isPending || remove.isPending}
                  onClick={() => (confirming === "rotate" ? rotate.mutate() : remove.mutate())}
                >
                  {confirming === "rotate" ? `Rotate password of ${u.name}` : `Delete ${u.name}`}
                </button>
                <button type="button" onClick={() => setConfirming(null)}>
                  Cancel
                </button>
              </div>
            </div>
          ) : (
            <div className="buttons-row">
              <button type="button" className="small" onClick={() => setConfirming("rotate")} aria-label={`Rotate password of ${u.name}…`}>
                Rotate…
              </button>
              <button type="button" className="small" onClick={() => setConfirming("delete")} aria-label={`Delete ${u.name}…`}>
                Delete…
              </button>
            </div>
          )}
          <ProblemView error={rotate.error ?? remove.error} context="Refused" />
        </td>
      ) : null}
    </tr>
  );
}

const USER_FIELDS = ["name", "acls", "quotas"];

function CreateUser({ ws, cluster, onCreated }: { ws: string; cluster: string; onCreated: (c: KafkaUserCredential) => void }) {
  const queryClient = useQueryClient();
  const [name, setName] = useState("");
  const [acls, setAcls] = useState("");
  const [produceRate, setProduceRate] = useState("");
  const [fetchRate, setFetchRate] = useState("");
  const [local, setLocal] = useState<Problem | null>(null);
  const create = useMutation({
    mutationFn: (body: Parameters<typeof createBody>[0]) =>
      call(
        client.POST("/v1/workspaces/{ws}/clusters/{cluster}/kafka-users", {
          params: { path: { ws, cluster } },
          body: createBody(body),
        }),
      ),
    onSuccess: (c) => {
      setName("");
      setAcls("");
      setProduceRate("");
      setFetchRate("");
      onCreated(c);
      void queryClient.invalidateQueries({ queryKey: ["kafka-users", ws, cluster] });
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setLocal(null);
    create.reset();
    try {
      create.mutate({ name, acls: parseAcls(acls), produceRate, fetchRate });
    } catch (error) {
      setLocal({
        title: "Invalid ACL",
        status: 0,
        code: "invalid_field",
        field: "acls",
        detail: error instanceof Error ? error.message : String(error),
      });
    }
  };
  const problem = local ?? (create.error ? toProblem(create.error) : null);
  return (
    <section aria-labelledby="create-kafka-user">
      <h3 id="create-kafka-user">Create a Kafka user</h3>
      <form className="form" onSubmit={submit} aria-label="Create Kafka user">
        <Field label="User name" name="name" problem={problem} hint="1-64 letters, digits, ., _ or -">
          {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} required />}
        </Field>
        <Field
          label="ACLs"
          name="acls"
          problem={problem}
          hint="One per line: [allow|deny] TYPE:NAME:OPS, e.g. topic:orders:read,describe or group:app-*:read"
        >
          {(p) => <textarea {...p} rows={3} value={acls} onChange={(e) => setAcls(e.target.value)} className="mono" />}
        </Field>
        <Field label="Produce quota (bytes/s per broker)" name="quotas.producer_byte_rate" problem={problem} hint="Optional">
          {(p) => <input {...p} type="number" min={1} value={produceRate} onChange={(e) => setProduceRate(e.target.value)} />}
        </Field>
        <Field label="Fetch quota (bytes/s per broker)" name="quotas.consumer_byte_rate" problem={problem} hint="Optional">
          {(p) => <input {...p} type="number" min={1} value={fetchRate} onChange={(e) => setFetchRate(e.target.value)} />}
        </Field>
        {problem && !local && !USER_FIELDS.some((f) => fieldError(problem, f)) ? (
          <ProblemView error={create.error} context="Cannot create the user" />
        ) : null}
        <button type="submit" className="primary" disabled={create.isPending}>
          {create.isPending ? "Creating…" : "Create Kafka user"}
        </button>
      </form>
    </section>
  );
}

function createBody({
  name,
  acls,
  produceRate,
  fetchRate,
}: {
  name: string;
  acls: ReturnType<typeof parseAcls>;
  produceRate: string;
  fetchRate: string;
}) {
  const quotas =
    produceRate || fetchRate
      ? {
          producer_byte_rate: produceRate ? Number(produceRate) : undefined,
          consumer_byte_rate: fetchRate ? Number(fetchRate) : undefined,
        }
      : undefined;
  return { name, acls, quotas };
}
