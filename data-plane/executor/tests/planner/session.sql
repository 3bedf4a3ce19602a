-- shape: aggregate
-- task: SELECT account AS __k0, window_start AS __k1, window_end AS __k2, count(*) AS __p0_0 FROM __src AS tx GROUP BY account, window_start, window_end
-- final: SELECT __k0 AS "account", __k1 AS "window_start", __k2 AS "window_end", __a0 AS n FROM __groups
-- output: account Utf8, window_start Timestamp(ms), window_end Timestamp(ms), n Int64
CREATE TABLE tx (account TEXT, amount DOUBLE, merchant TEXT, tx_id TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
  WITH (connector = 'kafka', topic = 'transactions', bootstrap_servers = 'localhost:9092');
CREATE TABLE out WITH (connector = 'memory');
INSERT INTO out
SELECT account, window_start, window_end, count(*) AS n
FROM SESSION(tx, ts, INTERVAL '30' SECOND)
GROUP BY account, window_start, window_end;
