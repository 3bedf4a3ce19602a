-- The demo's alert query: per account and 10-second window, the total spent; an alert when it
-- passes 5,000. Each window is emitted once, when the watermark (5 s behind the latest
-- transaction) passes its end.
CREATE TABLE transactions (account TEXT, amount DOUBLE, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
  WITH (connector = 'kafka', topic = 'transactions', format = 'json', starting_offsets = 'earliest');
CREATE TABLE alerts WITH (connector = 'kafka', topic = 'alerts', format = 'json', key = 'account');
SET trigger = 'processing_time 1s';
INSERT INTO alerts
SELECT window_start, window_end, account, sum(amount) AS total, count(*) AS n
FROM TUMBLE(transactions, ts, INTERVAL '10' SECOND)
GROUP BY window_start, window_end, account
HAVING sum(amount) > 5000;
