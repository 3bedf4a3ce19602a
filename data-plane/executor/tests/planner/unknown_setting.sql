-- error: invalid_option 4:1
CREATE TABLE tx (account TEXT, amount DOUBLE, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
  WITH (connector = 'kafka', topic = 'transactions', bootstrap_servers = 'localhost:9092');
CREATE TABLE out WITH (connector = 'memory');
SET state_partition = 8;
INSERT INTO out SELECT account, amount FROM tx;
