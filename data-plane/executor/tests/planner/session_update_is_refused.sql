-- error: unsupported 4:1
CREATE TABLE tx (account TEXT, amount DOUBLE, merchant TEXT, tx_id TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
  WITH (connector = 'kafka', topic = 'transactions', bootstrap_servers = 'localhost:9092');
CREATE TABLE out WITH (connector = 'memory', output_mode = 'update');
INSERT INTO out
SELECT account, window_start, window_end, count(*) AS n
FROM SESSION(tx, ts, INTERVAL '30' SECOND)
GROUP BY account, window_start, window_end;
