-- error: unsupported 4:50
CREATE TABLE tx (account TEXT, amount DOUBLE, merchant TEXT, tx_id TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
  WITH (connector = 'kafka', topic = 'transactions', bootstrap_servers = 'localhost:9092');
CREATE TABLE out WITH (connector = 'memory');
INSERT INTO out SELECT window_start, window_end, count(DISTINCT merchant) AS n
FROM TUMBLE(tx, ts, INTERVAL '1' MINUTE) GROUP BY window_start, window_end;
