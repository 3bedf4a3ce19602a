/**
 * The app: the signed-in check (`GET /v1/me`), the shell (navigation by role, sign out) and the
 * routes. Paths mirror the API's: `/workspaces/{ws}/clusters/{cluster}/topics/{topic}`.
 */
import { useEffect, useState, type ReactNode } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { onUnauthorized, useReachable } from "./api/client";
import { ME_KEY, MeContext, useLogout, useMeQuery } from "./auth";
import { Link, navigate, useLocation } from "./components/nav";
import { ProblemView } from "./components/ProblemView";
import { can, roleIn } from "./lib/roles";
import { matchPath, pathOf } from "./lib/route";
import type { Me } from "./api/types";
import { Audit } from "./pages/Audit";
import { ClusterDetail } from "./pages/ClusterDetail";
import { ClusterCreate, Clusters } from "./pages/Clusters";
import { GroupDetail, Groups } from "./pages/Groups";
import { JobDetail } from "./pages/JobDetail";
import { Jobs } from "./pages/Jobs";
import { Login } from "./pages/Login";
import { KafkaUsers } from "./pages/KafkaUsers";
import { Nodes } from "./pages/Nodes";
import { LinkCreate, LinkDetail, ReplicationLinks } from "./pages/ReplicationLinks";
import { TopicDetail } from "./pages/TopicDetail";
import { Topics } from "./pages/Topics";
import { RoleBindings, Users } from "./pages/Access";
import { Workspaces } from "./pages/Workspaces";

type Params = Record<string, string>;

const ROUTES: [string, (p: Params, me: Me) => ReactNode][] = [
  ["/", () => <Workspaces />],
  ["/workspaces", () => <Workspaces />],
  ["/workspaces/:ws", (p) => <Clusters ws={p.ws} />],
  ["/workspaces/:ws/new-cluster", (p) => <ClusterCreate ws={p.ws} />],
  ["/workspaces/:ws/access", (p) => <RoleBindings ws={p.ws} />],
  ["/workspaces/:ws/replication-links", (p) => <ReplicationLinks ws={p.ws} />],
  ["/workspaces/:ws/new-replication-link", (p) => <LinkCreate ws={p.ws} />],
  ["/workspaces/:ws/replication-links/:l", (p) => <LinkDetail ws={p.ws} name={p.l} />],
  ["/workspaces/:ws/clusters/:c", (p) => <ClusterDetail ws={p.ws} name={p.c} />],
  ["/workspaces/:ws/clusters/:c/topics", (p) => <Topics ws={p.ws} cluster={p.c} />],
  ["/workspaces/:ws/clusters/:c/topics/:t", (p) => <TopicDetail ws={p.ws} cluster={p.c} topic={p.t} />],
  ["/workspaces/:ws/clusters/:c/consumer-groups", (p) => <Groups ws={p.ws} cluster={p.c} />],
  ["/workspaces/:ws/clusters/:c/consumer-groups/:g", (p) => <GroupDetail ws={p.ws} cluster={p.c} group={p.g} />],
  ["/workspaces/:ws/clusters/:c/kafka-users", (p) => <KafkaUsers ws={p.ws} cluster={p.c} />],
  ["/workspaces/:ws/clusters/:c/jobs", (p) => <Jobs ws={p.ws} cluster={p.c} />],
  ["/workspaces/:ws/clusters/:c/jobs/:j", (p) => <JobDetail ws={p.ws} cluster={p.c} job={p.j} />],
  ["/nodes", (_, me) => (me.platform_admin ? <Nodes /> : <NotPermitted what="The nodes page is for platform admins." />)],
  ["/audit", (_, me) => (me.platform_admin ? <Audit /> : <NotPermitted what="The audit log is for platform admins." />)],
  ["/users", () => <Users />],
];

function route(path: string, me: Me): ReactNode {
  for (const [pattern, render] of ROUTES) {
    const params = matchPath(pattern, path);
    if (params) return render(params, me);
  }
  return (
    <main id="main">
      <h1>Not found</h1>
      <p>No page at {path}.</p>
      <Link to="/">Go to the workspaces</Link>
    </main>
  );
}

function NotPermitted({ what }: { what: string }) {
  return (
    <main id="main">
      <h1>Not permitted</h1>
      <p role="alert" className="problem">
        {what}
      </p>
    </main>
  );
}

export function App() {
  const queryClient = useQueryClient();
  const reachable = useReachable();
  // While the control plane does not answer, ask again every 3 s (every page's own polling
  // does too): the first answer takes the banner away.
  const me = useMeQuery(reachable ? undefined : 3000);
  const [notice, setNotice] = useState<string | undefined>();
  const { path } = useLocation();

  useEffect(
    () =>
      onUnauthorized(() => {
        if (queryClient.getQueryData(ME_KEY)) setNotice("Your session has expired or was ended elsewhere. Sign in again to continue.");
        queryClient.setQueryData(ME_KEY, null);
        // What the ended session read is not shown to the next one.
        queryClient.removeQueries({ predicate: (q) => q.queryKey[0] !== ME_KEY[0] });
      }),
    [queryClient],
  );

  if (me.isPending) return <p className="loading">Loading…</p>;
  if (me.error && !me.data) {
    return (
      <main id="main" className="login">
        <h1>hdi</h1>
        <ProblemView error={me.error} context="Cannot reach the control plane" />
        <button type="button" onClick={() => void me.refetch()}>
          Try again
        </button>
      </main>
    );
  }
  if (!me.data) return <Login notice={notice} />;
  return (
    <MeContext.Provider value={me.data}>
      {reachable ? null : (
        <div className="banner" role="alert" data-testid="unreachable">
          Control plane unreachable: the pages show what they last read. Retrying…
        </div>
      )}
      <Shell me={me.data} path={path}>
        {route(path, me.data)}
      </Shell>
    </MeContext.Provider>
  );
}

function Shell({ me, path, children }: { me: Me; path: string; children: ReactNode }) {
  const logout = useLogout();
  const ws = path.startsWith("/workspaces/") ? decodeURIComponent(path.split("/")[2] ?? "") : null;
  const workspaces = me.workspaces.map((w) => w.workspace);
  if (ws && !workspaces.includes(ws)) workspaces.push(ws);
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link to="/" className="brand">
          hdi
        </Link>
        <nav aria-label="Main">
          <Link to="/workspaces" aria-current={path === "/" || path === "/workspaces" ? "page" : undefined}>
            Workspaces
          </Link>
          {ws ? (
            <>
              <Link to={pathOf("workspaces", ws)}>Clusters</Link>
              <Link to={pathOf("workspaces", ws, "replication-links")}>Replication links</Link>
              {can(me, ws, "admin") ? <Link to={pathOf("workspaces", ws, "access")}>Access</Link> : null}
            </>
          ) : null}
          {me.platform_admin ? <Link to="/nodes">Nodes</Link> : null}
          <Link to="/users">{me.platform_admin ? "Users and tokens" : "API tokens"}</Link>
          {me.platform_admin ? <Link to="/audit">Audit log</Link> : null}
        </nav>
        {workspaces.length > 1 ? (
          <div className="ws-switch">
            <label htmlFor="ws-switch">Workspace</label>
            <select id="ws-switch" value={ws ?? ""} onChange={(e) => e.target.value && navigate(pathOf("workspaces", e.target.value))}>
              <option value="">—</option>
              {workspaces.map((w) => (
                <option key={w} value={w}>
                  {w}
                </option>
              ))}
            </select>
          </div>
        ) : null}
        <div className="who">
          <span data-testid="whoami">
            {me.username}
            {me.platform_admin ? " (platform admin)" : ws ? ` (${roleIn(me, ws) ?? "no role"})` : ""}
          </span>
          <button type="button" onClick={() => void logout().then(() => navigate("/", true))}>
            Sign out
          </button>
        </div>
      </header>
      {children}
    </>
  );
}
