-- Certificate renewal: when each broker workload's quorum and Kafka listener certificates are
-- due to be renewed (two thirds into their lifetime, or at once when an operator rotates a
-- cluster's certificates). The control plane re-issues a due certificate the next time the
-- broker's node fetches its assignment, and the broker reloads it without a restart.
-- Certificates issued before this migration (valid until 4096) have none, so they are renewed once.
ALTER TABLE workloads
    ADD COLUMN tls_renew_at   TIMESTAMPTZ,
    ADD COLUMN kafka_renew_at TIMESTAMPTZ;
