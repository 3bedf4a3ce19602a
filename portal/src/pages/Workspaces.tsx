/** Workspaces: the ones the user may see; platform admins create them. */
import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { call, client } from "../api/client";
import { useMe } from "../auth";
import { Field } from "../components/Field";
import { Link, navigate } from "../components/nav";
import { Pager, usePageTokens } from "../components/Pager";
import { ProblemView } from "../components/ProblemView";
import { toProblem } from "../lib/problem";
import { roleIn } from "../lib/roles";
import { ago } from "../lib/format";
import { pathOf } from "../lib/route";

export function Workspaces() {
  const me = useMe();
  const paging = usePageTokens();
  const list = useQuery({
    queryKey: ["workspaces", paging.token],
    queryFn: () => call(client.GET("/v1/workspaces", { params: { query: { page_token: paging.token } } })),
  });
  return (
    <main id="main">
      <h1>Workspaces</h1>
      <ProblemView error={list.error} context="Cannot list workspaces" />
      {list.data ? (
        list.data.items.length === 0 ? (
          <p>No workspaces yet.</p>
        ) : (
          <table>
            <caption className="sr-only">Workspaces</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Your role</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((ws) => (
                <tr key={ws.id}>
                  <td>
                    <Link to={pathOf("workspaces", ws.name)}>{ws.name}</Link>
                  </td>
                  <td>{roleIn(me, ws.name) ?? "—"}</td>
                  <td>{ago(ws.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      ) : null}
      <Pager
        label="Workspaces"
        page={paging.page}
        nextToken={list.data?.next_page_token}
        onNext={paging.next}
        onPrevious={paging.previous}
      />
      {me.platform_admin ? <CreateWorkspace /> : null}
    </main>
  );
}

function CreateWorkspace() {
  const queryClient = useQueryClient();
  const [name, setName] = useState("");
  const create = useMutation({
    mutationFn: (name: string) => call(client.POST("/v1/workspaces", { body: { name } })),
    onSuccess: (ws) => {
      void queryClient.invalidateQueries({ queryKey: ["workspaces"] });
      navigate(pathOf("workspaces", ws.name));
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(name);
  };
  const problem = create.error ? toProblem(create.error) : null;
  return (
    <section aria-labelledby="create-ws">
      <h2 id="create-ws">Create a workspace</h2>
      <form onSubmit={submit} className="inline-form">
        <Field label="Workspace name" name="name" problem={problem}>
          {(props) => <input {...props} value={name} onChange={(e) => setName(e.target.value)} required />}
        </Field>
        <button type="submit" className="primary" disabled={create.isPending}>
          Create workspace
        </button>
      </form>
      {problem && !problem.field ? <ProblemView error={create.error} /> : null}
    </section>
  );
}
