-- Rotation of a Kafka cluster's certificate authorities (its quorum CA and its Kafka CA), in
-- three phases so that nothing stops trusting a certificate still in use:
--   trusting: the new authorities are made (`*_ca_next_cert`/`*_ca_next_key`); every broker and
--             client is given both the current and the new certificate to trust; what is
--             issued is still signed by the current ones. Lasts until `ca_rotation_at`.
--   issuing:  the new authorities become the current ones (`*_ca_cert`/`*_ca_key`), the old
--             certificates stay trusted (`*_ca_previous_cert`), and every broker certificate is
--             due: each is issued again, signed by the new authority, at its node's next fetch.
--             `ca_rotation_at` is when this phase began.
--   settling: every broker certificate is signed by the new authorities (since `ca_rotation_at`);
--             the old certificates stay trusted a little longer, until the nodes have loaded
--             what they were sent, then the rotation ends and only the new ones are trusted.
ALTER TABLE clusters
    ADD COLUMN ca_rotation               TEXT CHECK (ca_rotation IN ('trusting', 'issuing', 'settling')),
    ADD COLUMN ca_rotation_at            TIMESTAMPTZ,
    ADD COLUMN kafka_ca_next_cert        TEXT,
    ADD COLUMN kafka_ca_next_key         TEXT,
    ADD COLUMN kafka_ca_previous_cert    TEXT,
    ADD COLUMN quorum_ca_next_cert       TEXT,
    ADD COLUMN quorum_ca_next_key        TEXT,
    ADD COLUMN quorum_ca_previous_cert   TEXT,
    ADD CONSTRAINT ca_rotation_has_a_time CHECK ((ca_rotation IS NULL) = (ca_rotation_at IS NULL));
