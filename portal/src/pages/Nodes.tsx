/** The fleet's nodes (platform admins): status, heartbeat age, fault domain, capacity. */
import { useQuery } from "@tanstack/react-query";
import { call, client } from "../api/client";
import { Badge } from "../components/Badge";
import { Pager, usePageTokens } from "../components/Pager";
import { ProblemView } from "../components/ProblemView";
import { bytes } from "../lib/format";

export function Nodes() {
  const paging = usePageTokens();
  const list = useQuery({
    queryKey: ["nodes", paging.token],
    queryFn: () => call(client.GET("/v1/nodes", { params: { query: { page_token: paging.token } } })),
    refetchInterval: 5000,
  });
  return (
    <main id="main">
      <h1>Nodes</h1>
      <ProblemView error={list.error} context="Cannot list nodes" />
      {list.data ? (
        <table>
          <caption className="sr-only">Nodes</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
              <th scope="col">Address</th>
              <th scope="col">Fault domain</th>
              <th scope="col">CPU</th>
              <th scope="col">Memory</th>
              <th scope="col">Disk</th>
              <th scope="col">Heartbeat</th>
              <th scope="col">Agent</th>
            </tr>
          </thead>
          <tbody>
            {list.data.items.map((n) => (
              <tr key={n.id}>
                <td>{n.name}</td>
                <td>
                  <Badge state={n.status} />
                </td>
                <td>{n.address}</td>
                <td>{n.fault_domain}</td>
                <td>{n.capacity.cpu_millis / 1000}</td>
                <td>{bytes(n.capacity.memory_bytes)}</td>
                <td>{bytes(n.capacity.disk_bytes)}</td>
                <td>{n.heartbeat_age_seconds.toFixed(1)} s ago</td>
                <td>{n.agent_version}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <Pager label="Nodes" page={paging.page} nextToken={list.data?.next_page_token} onNext={paging.next} onPrevious={paging.previous} />
    </main>
  );
}
