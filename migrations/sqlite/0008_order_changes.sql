-- A storefront's later copy of an order, applied (gateway/src/changes.rs): changes to an order a
-- supplier already has are sent to it as updates (gateway/src/dispatch/update.rs), each with its
-- answer. Kept side by side with ../postgres/0008_order_changes.sql.

create table supplier_order_updates (
    id text primary key,
    supplier_order_id text not null,
    order_id text not null,
    -- JSON list of what changed: 'ship-to', 'lines', 'buyer-note', 'customer'.
    changes text not null,
    -- JSON list of {external_line_id, quantity}: the supplier order's lines as asked (0: removed).
    lines text not null,
    -- 'waiting' (for the push to be answered), 'queued', 'requested', 'applied', 'refused', 'by_hand',
    -- 'dropped'.
    status text not null,
    reason text,
    created_at_ms integer not null,
    answered_at_ms integer
);
create index supplier_order_updates_so_idx on supplier_order_updates (supplier_order_id);
