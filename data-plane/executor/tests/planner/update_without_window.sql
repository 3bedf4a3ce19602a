-- shape: aggregate
-- task: SELECT account AS __k0, count(*) AS __p0_0, sum(amount) AS __p1_0 FROM __src AS tx GROUP BY account
-- final: SELECT __k0 AS "account", __a0 AS n, __a1 / __a0 AS mean FROM __groups
-- output: account Utf8, n Int64, mean Float64
CREATE TABLE tx (account TEXT, amount DOUBLE, merchant TEXT, tx_id TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
  WITH (connector = 'kafka', topic = 'transactions', bootstrap_servers = 'localhost:9092');
CREATE TABLE out WITH (connector = 'memory', output_mode = 'update');
INSERT INTO out SELECT account, count(*) AS n, sum(amount) / count(*) AS mean FROM tx GROUP BY account;
