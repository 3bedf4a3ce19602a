-- Streaming SQL jobs of Spark clusters: desired state only. Whether a job runs, and how far it
-- got, is asked live from the cluster's executor driver; the job reconciler makes every serving
-- driver hold exactly the jobs listed here (resubmitting lost ones, stopping unknown ones).
CREATE TABLE jobs (
    id               UUID PRIMARY KEY,
    -- The Spark cluster the job runs on; deleting the cluster deletes its jobs.
    cluster_id       UUID NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    sql              TEXT NOT NULL,
    -- The Kafka cluster (same workspace) whose bootstrap servers the job is given; NULL when none
    -- was named or that cluster was deleted since.
    kafka_cluster_id UUID REFERENCES clusters (id) ON DELETE SET NULL,
    created_by       TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (cluster_id, name)
);
CREATE INDEX jobs_by_kafka_cluster ON jobs (kafka_cluster_id);
