-- Mutual TLS on Kafka clusters' quorum listeners: each cluster's certificate authority (made
-- by the control plane the first time one of its brokers is assigned) and each broker
-- workload's certificate and key, issued by that authority once and delivered to the broker's
-- node in its assignment (the agent writes them as 0600 files). Never shown by the API.
ALTER TABLE clusters
    ADD COLUMN quorum_ca_cert TEXT,
    ADD COLUMN quorum_ca_key  TEXT;
ALTER TABLE workloads
    ADD COLUMN tls_cert TEXT,
    ADD COLUMN tls_key  TEXT;
