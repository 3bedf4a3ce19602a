-- error: unsupported 4:1
CREATE TABLE tx (account TEXT, amount DOUBLE, merchant TEXT, tx_id TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
  WITH (connector = 'kafka', topic = 'transactions', bootstrap_servers = 'localhost:9092');
CREATE TABLE out WITH (connector = 'memory');
INSERT INTO out SELECT account FROM tx ORDER BY account;
