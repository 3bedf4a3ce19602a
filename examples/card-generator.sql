-- The demo's card-transaction generator: 200 transactions a second over 100 accounts, with one
-- account in 97 spending big (so that alerts fire), written to the topic `transactions`.
CREATE TABLE ticks (ts TIMESTAMP, value BIGINT) WITH (connector = 'rate', rows_per_second = '200');
CREATE TABLE transactions WITH (connector = 'kafka', topic = 'transactions', format = 'json', key = 'account');
SET trigger = 'processing_time 1s';
INSERT INTO transactions
SELECT concat('acct-', lpad(CAST(value % 100 AS VARCHAR), 3, '0')) AS account,
       CASE WHEN value % 97 = 0 THEN 4000.0 ELSE CAST((value * 31) % 500 AS DOUBLE) END AS amount,
       ts
FROM ticks;
