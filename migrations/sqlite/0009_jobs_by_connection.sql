-- The claim passes by the calls through a connection this process has no room for
-- (worker::throttle) on the index alone, without reading each passed job's row; a
-- connection's queued calls are found through its own index when its circuit opens.
drop index jobs_due_idx;
create index jobs_due_idx on jobs (status, run_at_ms, connection_id, kind);
create index jobs_connection_idx on jobs (connection_id);
