-- shape: aggregate
-- task: SELECT window_start AS __k0, window_end AS __k1, account AS __k2, sum(CAST(amount AS DOUBLE)) AS __p0_0, count(amount) AS __p0_1, min(amount) AS __p1_0, max(amount) AS __p2_0, array_agg(DISTINCT merchant) AS __p3_0 FROM __src AS t WHERE amount > 0 GROUP BY window_start, window_end, account
-- final: SELECT __k0 AS "window_start", __k2 AS "account", __a0 AS mean, __a1 AS lo, __a2 AS hi, __a3 AS merchants FROM __groups
-- output: window_start Timestamp(ms), account Utf8, mean Float64, lo Float64, hi Float64, merchants Int64
CREATE TABLE tx (account TEXT, amount DOUBLE, merchant TEXT, tx_id TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
  WITH (connector = 'kafka', topic = 'transactions', bootstrap_servers = 'localhost:9092');
CREATE TABLE out WITH (connector = 'memory');
INSERT INTO out
SELECT window_start, account, avg(amount) AS mean, min(amount) AS lo, max(amount) AS hi, approx_distinct(merchant) AS merchants
FROM HOP(tx, DESCRIPTOR(ts), INTERVAL '10' SECOND, INTERVAL '1' MINUTE) AS t
WHERE amount > 0
GROUP BY window_start, window_end, account;
