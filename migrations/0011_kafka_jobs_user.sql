-- The SCRAM user (`hdi-jobs`) that Spark clusters' jobs reach a secured Kafka cluster of their
-- workspace as: its password (given to the executors with each job definition, never shown by
-- the API) and whether the cluster has its credential yet.
ALTER TABLE clusters
    ADD COLUMN kafka_jobs_password TEXT,
    ADD COLUMN kafka_jobs_ready    BOOLEAN NOT NULL DEFAULT false;
