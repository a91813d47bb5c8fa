-- After-sales: cases (cancel, refunds, returns, exchanges, reships, repairs) with their history,
-- the exception queue the service clocks open tasks in, and return-to-supplier notes. Kept side
-- by side with ../postgres/0006_aftersales.sql.

create table cases (
    id text primary key,
    order_id text not null,
    -- 'cancel', 'refund_only', 'partial_compensation', 'return_refund', 'exchange', 'reship',
    -- 'warranty_repair', 'paid_maintenance' (aftersales/machine.rs).
    kind text not null,
    state text not null,
    -- 'customer_return', 'in_transit_return', 'refused_parcel'; null when no goods come back.
    return_kind text,
    reason text,
    note text,
    -- Who opened it: 'storefront', 'operator', 'supplier', 'carrier'.
    source text not null,
    -- The storefront's id of the request (a refund, a return), unique per order when given.
    external_id text,
    -- JSON list of {external_line_id, quantity}.
    lines text not null,
    evidence text not null default '[]',
    currency text not null,
    -- What the case asks to refund, and what was refunded, in minor units.
    refund_requested_minor integer,
    refunded_minor integer not null default 0,
    -- JSON: who pays each freight leg ({"out": "shop", "back": "customer"}).
    freight text not null default '{}',
    -- The supplier order and shipment that carried the goods, when known.
    supplier_order_id text,
    shipment_id text,
    -- The supplier's return authorization (RMA) and where goods go back (JSON address).
    return_authorization text,
    return_address text,
    -- Inspection: 1 resellable, 0 defective, null not inspected.
    resellable integer,
    defect text,
    -- The supplier order of a replacement or reship.
    replacement_supplier_order_id text,
    opened_at_ms integer not null,
    updated_at_ms integer not null,
    closed_at_ms integer,
    constraint cases_external_key unique (order_id, external_id)
);
create index cases_order_idx on cases (order_id);
create index cases_state_idx on cases (state, updated_at_ms);

-- Every action on a case: who, from which state to which, with what.
create table case_events (
    id text primary key,
    case_id text not null,
    action text not null,
    from_state text,
    to_state text not null,
    actor text not null,
    detail text not null,
    at_ms integer not null
);
create index case_events_case_idx on case_events (case_id, at_ms);

-- The exception queue: what a service clock or an event says someone must do.
create table tasks (
    id text primary key,
    -- 'ship_late', 'stock_out_contact', 'mark_shipped_late', 'tracking_follow_up', 'no_tracking',
    -- 'customs_reminder', 'extend_receipt', 'refund_late', 'complaint_late', 'refund_queue',
    -- 'replacement_late', 'tracking_exception'.
    kind text not null,
    order_id text,
    case_id text,
    title text not null,
    detail text not null,
    -- 'open', 'done'.
    status text not null,
    due_at_ms integer not null,
    created_at_ms integer not null,
    done_at_ms integer,
    done_by text,
    -- One task per clock and subject: a clock that runs twice opens one task.
    dedupe_key text not null,
    constraint tasks_dedupe_key unique (dedupe_key)
);
create index tasks_open_idx on tasks (status, due_at_ms);

-- Defective returned goods sent back to the supplier, with the amount deducted from its account
-- (handbook 001).
create table return_notes (
    id text primary key,
    case_id text not null,
    supplier_connection_id text not null,
    lines text not null,
    defect text,
    deduction_minor integer,
    currency text,
    created_at_ms integer not null
);

alter table supplier_orders add column reship_of text;
alter table supplier_orders add column case_id text;
