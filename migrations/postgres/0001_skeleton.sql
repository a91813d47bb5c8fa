-- Daifa's first schema: connections, raw requests, canonical orders, routing v0, supplier
-- orders, shipments and the durable job queue. Times are milliseconds since the Unix epoch.
-- Kept side by side with ../sqlite/0001_skeleton.sql: same tables, same names.

create table connections (
    id text primary key,
    name text not null,
    kind text not null,
    plugin text not null,
    settings text not null,
    secrets text not null,
    allowed_hosts text not null,
    enabled bigint not null default 1,
    created_at_ms bigint not null,
    constraint connections_name_key unique (name),
    constraint connections_kind_check check (kind in ('channel', 'supplier'))
);

create table raw_requests (
    id text primary key,
    connection_name text not null,
    connection_id text,
    method text not null,
    path text not null,
    headers text not null,
    body bytea not null,
    received_at_ms bigint not null,
    status text not null,
    status_code bigint,
    reason text,
    delivery_id text,
    topic text,
    order_id text
);
create index raw_requests_connection_idx on raw_requests (connection_name, received_at_ms);
create index raw_requests_order_idx on raw_requests (order_id);

create table deliveries (
    connection_id text not null,
    delivery_id text not null,
    raw_request_id text not null,
    constraint deliveries_pkey primary key (connection_id, delivery_id)
);

create table orders (
    id text primary key,
    connection_id text not null,
    external_id text not null,
    order_number text,
    storefront text not null,
    currency text not null,
    total_minor bigint not null,
    status text not null,
    hold_reason text,
    canonical text not null,
    raw_request_id text not null,
    placed_at_ms bigint not null,
    created_at_ms bigint not null,
    updated_at_ms bigint not null,
    constraint orders_connection_external_key unique (connection_id, external_id)
);
create index orders_created_idx on orders (created_at_ms);

create table order_events (
    id text primary key,
    order_id text not null,
    kind text not null,
    detail text not null,
    created_at_ms bigint not null
);
create index order_events_order_idx on order_events (order_id, created_at_ms);

create table sku_mappings (
    id text primary key,
    channel_connection_id text not null,
    storefront_sku text not null,
    supplier_connection_id text not null,
    supplier_sku text not null,
    created_at_ms bigint not null,
    constraint sku_mappings_channel_sku_key unique (channel_connection_id, storefront_sku)
);

create table supplier_orders (
    id text primary key,
    order_id text not null,
    supplier_connection_id text not null,
    status text not null,
    external_id text,
    reason text,
    created_at_ms bigint not null,
    updated_at_ms bigint not null
);
create index supplier_orders_order_idx on supplier_orders (order_id);

create table supplier_order_lines (
    supplier_order_id text not null,
    external_line_id text not null,
    storefront_sku text not null,
    supplier_sku text not null,
    quantity bigint not null,
    constraint supplier_order_lines_pkey primary key (supplier_order_id, external_line_id)
);

create table shipments (
    id text primary key,
    order_id text not null,
    supplier_order_id text not null,
    carrier_code text not null,
    tracking_number text not null,
    tracking_url text,
    shipped_at_ms bigint not null,
    lines text not null,
    status text not null,
    external_id text,
    created_at_ms bigint not null,
    constraint shipments_tracking_key unique (supplier_order_id, tracking_number)
);
create index shipments_order_idx on shipments (order_id);

create table jobs (
    id text primary key,
    kind text not null,
    idempotency_key text not null,
    payload text not null,
    status text not null,
    attempts bigint not null default 0,
    run_at_ms bigint not null,
    locked_by text,
    locked_until_ms bigint,
    last_error text,
    order_id text,
    connection_id text,
    created_at_ms bigint not null,
    updated_at_ms bigint not null,
    constraint jobs_idempotency_key unique (idempotency_key)
);
create index jobs_due_idx on jobs (status, run_at_ms);
create index jobs_order_idx on jobs (order_id);

create table job_attempts (
    id text primary key,
    job_id text not null,
    attempt bigint not null,
    worker text not null,
    started_at_ms bigint not null,
    finished_at_ms bigint not null,
    outcome text not null,
    error_kind text,
    error text
);
create index job_attempts_job_idx on job_attempts (job_id, attempt);
