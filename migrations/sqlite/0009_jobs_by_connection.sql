-- The queued jobs of one connection, found without reading the others: a connection whose
-- circuit opened has its queued calls put off (worker::throttle).
create index jobs_connection_idx on jobs (connection_id, status, run_at_ms);
