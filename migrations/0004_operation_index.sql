-- The newest operation of a cluster (cluster pages, GET cluster) without scanning the workspace.
CREATE INDEX operations_by_cluster ON operations (cluster_id, created_at DESC);
