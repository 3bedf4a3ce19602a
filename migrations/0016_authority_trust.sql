-- What is trusted of a cluster's authorities, in one place: the current certificate, and
-- during a rotation the other one (the next while trusting, the previous while issuing and
-- settling; migration 0014). Read by the brokers' assignments, client secrets and the API.
ALTER TABLE clusters
    ADD COLUMN quorum_ca_trust TEXT GENERATED ALWAYS AS
        (quorum_ca_cert || coalesce(quorum_ca_next_cert, quorum_ca_previous_cert, '')) STORED,
    ADD COLUMN kafka_ca_trust TEXT GENERATED ALWAYS AS
        (kafka_ca_cert || coalesce(kafka_ca_next_cert, kafka_ca_previous_cert, '')) STORED;
