-- The routing engine: several supplier offers per storefront SKU (replacing routing v0's one
-- mapping), what the shop knows of its products, policies, decisions with their reasons, holds,
-- substitutions and notices. Kept side by side with ../postgres/0005_routing_engine.sql.

create table offers (
    id text primary key,
    channel_connection_id text not null,
    storefront_sku text not null,
    supplier_connection_id text not null,
    supplier_sku text not null,
    -- Unit cost and shipping of one unit, in `currency`'s minor unit; null: unknown.
    unit_cost_minor integer,
    shipping_cost_minor integer,
    currency text,
    -- Units the supplier has; null: it never said.
    stock integer,
    -- Days from order to hand-over to the carrier; null: unknown.
    lead_time_days integer,
    -- JSON lists: countries it ships to (empty: anywhere), carriers it ships with, what buyer
    -- notes it can honour ("gift_wrap").
    ships_to text not null default '[]',
    carriers text not null default '[]',
    capabilities text not null default '[]',
    -- Lower first, for the `priority` strategy.
    priority integer not null default 100,
    enabled integer not null default 1,
    discontinued integer not null default 0,
    created_at_ms integer not null,
    updated_at_ms integer not null,
    constraint offers_key unique (channel_connection_id, storefront_sku, supplier_connection_id, supplier_sku)
);
create index offers_supplier_sku_idx on offers (supplier_connection_id, supplier_sku);

-- Routing v0's mappings become offers.
insert into offers (id, channel_connection_id, storefront_sku, supplier_connection_id, supplier_sku, created_at_ms, updated_at_ms)
    select 'off_' || substr(id, 5), channel_connection_id, storefront_sku, supplier_connection_id, supplier_sku, created_at_ms, created_at_ms
    from sku_mappings;
drop table sku_mappings;

-- What the shop knows of a storefront SKU, for the rules (customs, restricted goods, brands).
create table products (
    channel_connection_id text not null,
    storefront_sku text not null,
    category text,
    brand text,
    weight_grams integer,
    updated_at_ms integer not null,
    constraint products_pkey primary key (channel_connection_id, storefront_sku)
);

-- Policy documents (JSON), over the handbook's defaults: scope 'global' or 'channel:<name>'.
create table policies (
    name text not null,
    scope text not null,
    value text not null,
    updated_at_ms integer not null,
    constraint policies_pkey primary key (name, scope)
);

-- Every routing decision, with its reasons (the trace of every line and offer).
create table routing_decisions (
    id text primary key,
    order_id text not null,
    -- 'route', 'fallback', 'release', 'resolve', 'retry'.
    trigger text not null,
    -- 'routed', 'partial', 'held'.
    outcome text not null,
    decision text not null,
    created_at_ms integer not null
);
create index routing_decisions_order_idx on routing_decisions (order_id, created_at_ms);

-- Why an order waits for the operator, and how it was resolved.
create table holds (
    id text primary key,
    order_id text not null,
    -- 'stock_out', 'address', 'value', 'brand', 'note', 'customs', 'incomplete', 'supplier'.
    kind text not null,
    reason text not null,
    -- 'open', 'released', 'resolved', 'cancelled'.
    status text not null,
    opened_at_ms integer not null,
    -- Stock-outs: the customer is contacted by then (policy stock_out_contact).
    contact_due_at_ms integer,
    resolved_at_ms integer,
    resolved_by text,
    resolution text
);
create index holds_order_idx on holds (order_id);
create index holds_status_idx on holds (status, opened_at_ms);

-- An order line routed as another storefront SKU (the stock-out choice "an alternative"), with
-- the discount offered for it.
create table line_substitutions (
    order_id text not null,
    external_line_id text not null,
    storefront_sku text not null,
    discount_minor integer,
    currency text,
    created_at_ms integer not null,
    constraint line_substitutions_pkey primary key (order_id, external_line_id)
);

-- What a supplier's catalogue changes mean for the shop: a price rise, a stock-out, a product
-- discontinued.
create table notices (
    id text primary key,
    kind text not null,
    offer_id text,
    supplier_connection_id text not null,
    supplier_sku text not null,
    detail text not null,
    created_at_ms integer not null,
    acknowledged_at_ms integer
);
create index notices_open_idx on notices (acknowledged_at_ms, created_at_ms);

-- What routing decided for a supplier order: the declared customs value and how it was reached,
-- the carriers to avoid, the supplier order it replaces (fallback), the decision that made it.
alter table supplier_orders add column declared_value_minor integer;
alter table supplier_orders add column declared_currency text;
alter table supplier_orders add column declared_reason text;
alter table supplier_orders add column avoid_carriers text not null default '[]';
alter table supplier_orders add column replaces_id text;
alter table supplier_orders add column decision_id text;
create index supplier_orders_supplier_day_idx on supplier_orders (supplier_connection_id, created_at_ms);
alter table supplier_order_lines add column offer_id text;
