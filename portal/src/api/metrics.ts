/** The control plane's per-cluster time series (`GET …/clusters/{cluster}/metrics`), polled. */
import { useQuery } from "@tanstack/react-query";
import { call, client } from "./client";

/** The cluster's sampled series (polled every 5 s). */
export function useClusterMetrics(ws: string, cluster: string, enabled = true) {
  return useQuery({
    queryKey: ["cluster-metrics", ws, cluster],
    queryFn: () => call(client.GET("/v1/workspaces/{ws}/clusters/{cluster}/metrics", { params: { path: { ws, cluster } } })),
    refetchInterval: 5000,
    enabled,
  });
}

