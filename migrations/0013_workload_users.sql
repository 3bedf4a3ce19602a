-- Tenant isolation on nodes: every cluster's workloads run under an operating-system user of
-- their own (`clusters.os_uid`, also the number of the cluster's own group), and every workspace
-- has a group (`workspaces.os_gid`) that owns its storage root, so the executors of one
-- workspace share job files and nobody else reads them. Numbers come from one sequence, so a
-- cluster's user never equals a workspace's group, and start above every ordinary and system
-- id (node agents refuse numbers outside 1,000,000 ..= 1,999,999,999). Existing rows get theirs
-- now.
CREATE SEQUENCE os_ids START 1000000 MINVALUE 1000000 MAXVALUE 1999999999 NO CYCLE;
ALTER TABLE workspaces ADD COLUMN os_gid BIGINT NOT NULL UNIQUE DEFAULT nextval('os_ids');
ALTER TABLE clusters ADD COLUMN os_uid BIGINT NOT NULL UNIQUE DEFAULT nextval('os_ids');
