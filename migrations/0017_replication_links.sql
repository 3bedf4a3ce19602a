-- Replication links (geo-replication pairs): desired state of a cluster link defined on the
-- target (mirror) cluster and fed from the source cluster, both Kafka clusters of the workspace.
-- The link reconciler makes the target's `hdi.link.<name>.*` cluster-wide configs match a row.
--
-- `state` is where the pair stands: `mirroring` and `paused` are steady; `promoting`
-- (planned switchover), `failing_over` (forced) and `reversing` are in progress under an
-- operation and end in `promoted`, `failed_over` and (reverse swaps source and target)
-- `mirroring`. `source_user` is the Kafka user made on a secured source for the link (its
-- password is kept only in the target's metadata quorum, as the link's `sasl.password`).
-- `sync_configs` is always true: mirror topics always follow their source's configs.
CREATE TABLE replication_links (
    id                 UUID PRIMARY KEY,
    workspace_id       UUID NOT NULL REFERENCES workspaces (id),
    name               TEXT NOT NULL,
    source_cluster_id  UUID NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    target_cluster_id  UUID NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    topics             JSONB NOT NULL DEFAULT '[]',
    topics_exclude     JSONB NOT NULL DEFAULT '[]',
    groups             JSONB NOT NULL DEFAULT '[]',
    groups_exclude     JSONB NOT NULL DEFAULT '[]',
    sync_configs       BOOLEAN NOT NULL DEFAULT true CHECK (sync_configs),
    state              TEXT NOT NULL DEFAULT 'mirroring' CHECK (state IN
        ('mirroring', 'paused', 'promoting', 'promoted', 'failing_over', 'failed_over', 'reversing')),
    -- The link was reversed at least once (its topics are then the literal names it mirrored).
    reversed           BOOLEAN NOT NULL DEFAULT false,
    source_user        TEXT,
    -- Bumped by every change of the desired state; `applied_generation` is the one the target's
    -- brokers were last seen to hold.
    generation         BIGINT NOT NULL DEFAULT 1,
    applied_generation BIGINT NOT NULL DEFAULT 0,
    created_by         TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, name),
    CHECK (source_cluster_id <> target_cluster_id)
);
CREATE INDEX replication_links_by_source ON replication_links (source_cluster_id);
CREATE INDEX replication_links_by_target ON replication_links (target_cluster_id);

-- Operations of links: on the link's target cluster, one running per link (beside the cluster's
-- own operations, which stay one running per cluster), with a result document (a failover's
-- stop offsets and loss bound).
ALTER TABLE operations
    ADD COLUMN link_id UUID,
    ADD COLUMN link_name TEXT,
    ADD COLUMN result JSONB;
ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check CHECK (kind IN
    ('create', 'update', 'resize', 'delete',
     'link_pause', 'link_resume', 'link_promote', 'link_failover', 'link_reverse'));
DROP INDEX operations_one_running;
CREATE UNIQUE INDEX operations_one_running ON operations (cluster_id)
    WHERE state = 'Running' AND link_id IS NULL;
CREATE UNIQUE INDEX operations_one_running_per_link ON operations (link_id)
    WHERE state = 'Running' AND link_id IS NOT NULL;
