-- shape: aggregate
-- task: SELECT window_start AS __k0, window_end AS __k1, account AS __k2, sum(amount) AS __p0_0, count(*) AS __p1_0 FROM __src AS tx GROUP BY window_start, window_end, account
-- final: SELECT __k0 AS "window_start", __k1 AS "window_end", __k2 AS "account", __a0 AS total, __a1 AS n FROM __groups WHERE __a0 > 10000
-- output: window_start Timestamp(ms), window_end Timestamp(ms), account Utf8, total Float64, n Int64
CREATE TABLE tx (account TEXT, amount DOUBLE, merchant TEXT, tx_id TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
  WITH (connector = 'kafka', topic = 'transactions', bootstrap_servers = 'localhost:9092');
CREATE TABLE alerts WITH (connector = 'kafka', topic = 'alerts', bootstrap_servers = 'localhost:9092');
INSERT INTO alerts
SELECT window_start, window_end, account, sum(amount) AS total, count(*) AS n
FROM TUMBLE(tx, ts, INTERVAL '1' MINUTE)
GROUP BY window_start, window_end, account HAVING sum(amount) > 10000;
