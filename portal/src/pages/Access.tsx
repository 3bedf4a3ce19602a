/**
 * Access: a workspace's role bindings (its admins grant and revoke), and users with their API
 * tokens (platform admins; every user sees their own tokens).
 */
import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { call, client } from "../api/client";
import type { Role } from "../api/types";
import { useMe } from "../auth";
import { Field } from "../components/Field";
import { ProblemView } from "../components/ProblemView";
import { ago } from "../lib/format";
import { toProblem } from "../lib/problem";
import { can } from "../lib/roles";

export function RoleBindings({ ws }: { ws: string }) {
  const me = useMe();
  const queryClient = useQueryClient();
  const admin = can(me, ws, "admin");
  const list = useQuery({
    queryKey: ["role-bindings", ws],
    queryFn: () => call(client.GET("/v1/workspaces/{ws}/role-bindings", { params: { path: { ws } } })),
    enabled: admin,
  });
  const [username, setUsername] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const put = useMutation({
    mutationFn: () =>
      call(client.PUT("/v1/workspaces/{ws}/role-bindings/{username}", { params: { path: { ws, username } }, body: { role } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["role-bindings", ws] }),
  });
  const remove = useMutation({
    mutationFn: (user: string) =>
      call(client.DELETE("/v1/workspaces/{ws}/role-bindings/{username}", { params: { path: { ws, username: user } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["role-bindings", ws] }),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    put.mutate();
  };
  return (
    <main id="main">
      <h1>Access to {ws}</h1>
      {!admin ? (
        <p role="alert" className="problem">
          Not permitted: the role bindings of {ws} are for its admins.
        </p>
      ) : (
        <>
          <ProblemView error={list.error} context="Cannot list role bindings" />
          <table>
            <caption className="sr-only">Role bindings</caption>
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Role</th>
                <th scope="col">Granted</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {(list.data?.items ?? []).map((b) => (
                <tr key={b.username}>
                  <td>{b.username}</td>
                  <td>{b.role}</td>
                  <td>{ago(b.created_at)}</td>
                  <td>
                    <button type="button" className="small" onClick={() => remove.mutate(b.username)} aria-label={`Revoke ${b.username}`}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <ProblemView error={remove.error} context="Revoke refused" />
          <h2>Grant a role</h2>
          <form onSubmit={submit} className="inline-form" aria-label="Grant a role">
            <Field label="Username" name="username" problem={put.error ? toProblem(put.error) : null}>
              {(p) => <input {...p} value={username} onChange={(e) => setUsername(e.target.value)} required />}
            </Field>
            <Field label="Role" name="role" problem={put.error ? toProblem(put.error) : null}>
              {(p) => (
                <select {...p} value={role} onChange={(e) => setRole(e.target.value as Role)}>
                  <option value="viewer">viewer</option>
                  <option value="operator">operator</option>
                  <option value="admin">admin</option>
                </select>
              )}
            </Field>
            <button type="submit" className="primary">
              Grant
            </button>
          </form>
          {put.error && !toProblem(put.error).field ? <ProblemView error={put.error} /> : null}
        </>
      )}
    </main>
  );
}

export function Users() {
  const me = useMe();
  const queryClient = useQueryClient();
  const users = useQuery({
    queryKey: ["users"],
    queryFn: () => call(client.GET("/v1/users", { params: { query: { page_size: 500 } } })),
    enabled: me.platform_admin,
  });
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const create = useMutation({
    mutationFn: () => call(client.POST("/v1/users", { body: { username, password } })),
    onSuccess: () => {
      setPassword("");
      void queryClient.invalidateQueries({ queryKey: ["users"] });
    },
  });
  const remove = useMutation({
    mutationFn: (user: string) => call(client.DELETE("/v1/users/{username}", { params: { path: { username: user } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["users"] }),
  });
  const problem = create.error ? toProblem(create.error) : null;
  return (
    <main id="main">
      <h1>Users and API tokens</h1>
      {me.platform_admin ? (
        <>
          <ProblemView error={users.error} context="Cannot list users" />
          <table>
            <caption className="sr-only">Users</caption>
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Platform admin</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {(users.data?.items ?? []).map((u) => (
                <tr key={u.username}>
                  <td>{u.username}</td>
                  <td>{u.platform_admin ? "yes" : "no"}</td>
                  <td>{ago(u.created_at)}</td>
                  <td>
                    <button type="button" className="small" onClick={() => remove.mutate(u.username)} aria-label={`Delete user ${u.username}`}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <ProblemView error={remove.error} context="Delete refused" />
          <h2>Create a user</h2>
          <form
            className="inline-form"
            aria-label="Create a user"
            onSubmit={(e) => {
              e.preventDefault();
              create.mutate();
            }}
          >
            <Field label="Username" name="username" problem={problem}>
              {(p) => <input {...p} value={username} onChange={(e) => setUsername(e.target.value)} required />}
            </Field>
            <Field label="Password" name="password" problem={problem}>
              {(p) => <input {...p} type="password" autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} required />}
            </Field>
            <button type="submit" className="primary">
              Create user
            </button>
          </form>
          {problem && !problem.field ? <ProblemView error={create.error} /> : null}
        </>
      ) : null}
      <Tokens username={me.username} />
    </main>
  );
}

function Tokens({ username }: { username: string }) {
  const queryClient = useQueryClient();
  const tokens = useQuery({
    queryKey: ["api-tokens", username],
    queryFn: () => call(client.GET("/v1/users/{username}/api-tokens", { params: { path: { username } } })),
  });
  const [name, setName] = useState("");
  const [days, setDays] = useState(90);
  const create = useMutation({
    mutationFn: () =>
      call(client.POST("/v1/users/{username}/api-tokens", { params: { path: { username } }, body: { name, expires_in_days: days } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["api-tokens", username] }),
  });
  const revoke = useMutation({
    mutationFn: (token: string) =>
      call(client.DELETE("/v1/users/{username}/api-tokens/{name}", { params: { path: { username, name: token } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["api-tokens", username] }),
  });
  const problem = create.error ? toProblem(create.error) : null;
  return (
    <section aria-labelledby="tokens">
      <h2 id="tokens">Your API tokens ({username})</h2>
      <ProblemView error={tokens.error} context="Cannot list API tokens" />
      <table>
        <caption className="sr-only">API tokens</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Created</th>
            <th scope="col">Expires</th>
            <th scope="col">Last used</th>
            <th scope="col">
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {(tokens.data?.items ?? []).map((t) => (
            <tr key={t.id}>
              <td>{t.name}</td>
              <td>{ago(t.created_at)}</td>
              <td>{t.expires_at?.slice(0, 10) ?? "never"}</td>
              <td>{ago(t.last_used_at)}</td>
              <td>
                <button type="button" className="small" onClick={() => revoke.mutate(t.name)} aria-label={`Revoke token ${t.name}`}>
                  Revoke
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <ProblemView error={revoke.error} context="Revoke refused" />
      <form
        className="inline-form"
        aria-label="Create an API token"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <Field label="Token name" name="name" problem={problem}>
          {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} required />}
        </Field>
        <Field label="Expires in days" name="expires_in_days" problem={problem}>
          {(p) => <input {...p} type="number" min={1} max={3650} value={days} onChange={(e) => setDays(Number(e.target.value))} />}
        </Field>
        <button type="submit">Create token</button>
      </form>
      {problem && !problem.field ? <ProblemView error={create.error} /> : null}
      {create.data ? (
        <p role="status" className="notice">
          Token <strong>{create.data.name}</strong> created. Copy its secret now, it is not shown again:{" "}
          <code data-testid="new-token">{create.data.token}</code>
        </p>
      ) : null}
    </section>
  );
}
