-- Carrier connections (tracking services and carriers' own APIs), the tracking of shipments,
-- and the state of polled connections. Kept side by side with ../sqlite/0004_carriers_tracking_polling.sql.

-- A connection may now be a carrier.
alter table connections drop constraint connections_kind_check;
alter table connections add constraint connections_kind_check check (kind in ('channel', 'supplier', 'carrier'));

-- Where each shipment stands, as the tracking services report it.
alter table shipments add column tracking_status text;
alter table shipments add column tracking_detail text;
alter table shipments add column tracking_updated_at_ms bigint;
alter table shipments add column estimated_delivery_ms bigint;
alter table shipments add column delivered_at_ms bigint;
create index shipments_tracking_number_idx on shipments (tracking_number);

-- A shipment registered with a carrier connection (the tracking service follows it).
create table tracking_registrations (
    shipment_id text not null,
    connection_id text not null,
    -- The carrier as the service identified it, and the service's own id of the tracking.
    carrier_code text,
    external_id text,
    registered_at_ms bigint not null,
    constraint tracking_registrations_pkey primary key (shipment_id, connection_id)
);
create index tracking_registrations_connection_idx on tracking_registrations (connection_id);

-- Every scan of a shipment, kept once.
create table tracking_events (
    id text primary key,
    shipment_id text not null,
    status text not null,
    detail text,
    description text not null,
    location text,
    occurred_at_ms bigint not null,
    raw_request_id text,
    created_at_ms bigint not null,
    constraint tracking_events_scan_key unique (shipment_id, occurred_at_ms, description)
);

-- Whether a package's plugin is polled, and how often (its manifest's capabilities), for the
-- poller to find due connections in one query. Packages installed before this migration never
-- asked (polling was reserved): 0.
alter table plugin_packages add column polling bigint not null default 0;
alter table plugin_packages add column poll_interval_ms bigint;

-- Connections the gateway polls: where the next poll starts, when it is due, who holds it.
create table poll_state (
    connection_id text primary key,
    -- Where the next poll continues (the plugin's cursor; for a carrier, the last shipment
    -- fetched in an unfinished round). None: from `since_ms`.
    cursor text,
    -- What a first poll fetches from: when polling of the connection began.
    since_ms bigint not null,
    next_poll_at_ms bigint not null,
    locked_by text,
    locked_until_ms bigint,
    last_polled_at_ms bigint,
    last_success_at_ms bigint,
    consecutive_failures bigint not null default 0,
    last_error text,
    last_raw_request_id text
);
create index poll_state_due_idx on poll_state (next_poll_at_ms);

-- Where a stored request came from: 'webhook' (POST /hooks/{connection}) or 'poll' (what the
-- gateway fetched through the plugin, kept as its raw payload; replay re-runs webhooks only).
alter table raw_requests add column origin text not null default 'webhook';
