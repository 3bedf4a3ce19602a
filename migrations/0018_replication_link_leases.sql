-- The link reconciler leases each link it works on (as the cluster reconciler leases clusters),
-- so that two control planes never act on one link at once (two new passwords for one link user
-- could otherwise leave the source and the target holding different ones).
ALTER TABLE replication_links
    ADD COLUMN lease_owner UUID,
    ADD COLUMN lease_until TIMESTAMPTZ;
