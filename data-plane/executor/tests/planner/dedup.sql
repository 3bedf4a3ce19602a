-- shape: dedup
-- task: SELECT DISTINCT tx_id, account, ts FROM __src AS tx
-- output: tx_id Utf8, account Utf8, ts Timestamp(ms)
CREATE TABLE tx (account TEXT, amount DOUBLE, merchant TEXT, tx_id TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
  WITH (connector = 'kafka', topic = 'transactions', bootstrap_servers = 'localhost:9092');
CREATE TABLE out WITH (connector = 'memory');
INSERT INTO out SELECT DISTINCT tx_id, account, ts FROM tx;
