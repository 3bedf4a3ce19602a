-- A Kafka user's client quotas (`producer_byte_rate`, `consumer_byte_rate`,
-- `request_percentage`; absent keys: no limit), applied to the cluster's `user=<name>` entity
-- with its ACLs (a change bumps `generation` like an ACL change).
ALTER TABLE kafka_users ADD COLUMN quotas JSONB NOT NULL DEFAULT '{}';
