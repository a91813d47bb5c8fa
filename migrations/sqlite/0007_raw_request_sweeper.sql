-- The raw-request sweeper: a webhook stored but never processed (the database failed, the
-- process stopped between storing and applying it) is processed again by the gateway itself,
-- on a backoff schedule, until it is applied or given up with a task for the operator. Kept
-- side by side with ../postgres/0007_raw_request_sweeper.sql.

-- How many times the sweeper took the request, and when it may take it next (while an attempt
-- runs, the end of its lease; after a failed one, the end of its backoff). Null: never taken.
alter table raw_requests add column attempts integer not null default 0;
alter table raw_requests add column next_attempt_at_ms integer;

-- Requests still `received` are few (the ones in flight and the stuck ones) among all that were
-- ever stored: a partial index finds the stale ones without reading the others.
create index raw_requests_received_idx on raw_requests (received_at_ms) where status = 'received';
