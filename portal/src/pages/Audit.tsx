/** The audit log (platform admins): who changed what, refusals included; newest first. */
import { useQuery } from "@tanstack/react-query";
import { call, client } from "../api/client";
import { Pager, usePageTokens } from "../components/Pager";
import { ProblemView } from "../components/ProblemView";

export function Audit() {
  const paging = usePageTokens();
  const list = useQuery({
    queryKey: ["audit", paging.token],
    queryFn: () => call(client.GET("/v1/audit-events", { params: { query: { page_token: paging.token, page_size: 100 } } })),
  });
  return (
    <main id="main">
      <h1>Audit log</h1>
      <ProblemView error={list.error} context="Cannot read the audit log" />
      {list.data ? (
        <table data-testid="audit">
          <caption className="sr-only">Audit events</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Actor</th>
              <th scope="col">Action</th>
              <th scope="col">Resource</th>
              <th scope="col">Outcome</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {list.data.items.map((e) => (
              <tr key={e.id}>
                <td>{e.at.replace("T", " ").slice(0, 19)}</td>
                <td>{e.actor}</td>
                <td>{e.action}</td>
                <td>{e.resource}</td>
                <td className={e.outcome === "accepted" ? "ok-text" : "bad-text"}>{e.outcome}</td>
                <td>{e.detail ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <Pager label="Audit events" page={paging.page} nextToken={list.data?.next_page_token} onNext={paging.next} onPrevious={paging.previous} />
    </main>
  );
}
