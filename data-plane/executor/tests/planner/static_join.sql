-- shape: map
-- task: SELECT tx.account, a.tier, upper(tx.merchant) AS merchant, tx.amount FROM __src AS tx JOIN accounts a ON tx.account = a.id WHERE a.tier = 'gold' AND tx.amount > 100
-- output: account Utf8, tier Utf8, merchant Utf8, amount Float64
CREATE TABLE tx (account TEXT, amount DOUBLE, merchant TEXT, tx_id TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
  WITH (connector = 'kafka', topic = 'transactions', bootstrap_servers = 'localhost:9092');
CREATE TABLE accounts (id TEXT, tier TEXT) WITH (connector = 'file', path = '/tmp/accounts.csv', format = 'csv');
CREATE TABLE out WITH (connector = 'memory');
INSERT INTO out
SELECT tx.account, a.tier, upper(tx.merchant) AS merchant, tx.amount
FROM tx JOIN accounts a ON tx.account = a.id
WHERE a.tier = 'gold' AND tx.amount > 100;
