-- Each cluster's data-plane credential: a random secret the control plane hands to the cluster's
-- processes (through their node agents, written as 0600 files) and presents when it calls them.
-- Spark clusters' drivers and workers require it on every endpoint. gen_random_uuid() draws from
-- PostgreSQL's strong random source; two of them give 244 random bits. Never shown by the API.
ALTER TABLE clusters
    ADD COLUMN credential TEXT NOT NULL
        DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
