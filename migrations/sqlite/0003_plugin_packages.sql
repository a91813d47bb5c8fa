-- Installed plugin packages, several versions side by side, and the version each connection pins.
-- A package row never changes once installed (but for the bundled ones, which follow the binary).

create table plugin_packages (
    name text not null,
    version text not null,
    kind text not null,
    wit_version text not null,
    -- SHA-256 of the package file, hex.
    digest text not null,
    -- The manifest as written (TOML).
    manifest text not null,
    package blob not null,
    -- 'bundled' (shipped in the gateway binary) or 'upload'.
    source text not null,
    enabled integer not null default 1,
    installed_at_ms integer not null,
    constraint plugin_packages_pkey primary key (name, version)
);

-- The version of its plugin a connection runs; set at start for connections made before versions.
alter table connections add column plugin_version text;
-- The version it ran before its last upgrade: what a rollback returns to.
alter table connections add column previous_plugin_version text;
-- The settings it had then (JSON): a rollback restores them with the version.
alter table connections add column previous_settings text;
-- A candidate version run in shadow on live traffic: compared, recorded, never acted on.
alter table connections add column shadow_plugin_version text;

-- Every change of a connection's version: upgrade, rollback, shadow on and off.
create table connection_plugin_history (
    id text primary key,
    connection_id text not null,
    action text not null,
    from_version text,
    to_version text,
    at_ms integer not null
);
create index connection_plugin_history_idx on connection_plugin_history (connection_id, at_ms);

-- Which plugin version handled a request or ran a job attempt (for replay, and to see an upgrade
-- take effect).
alter table raw_requests add column plugin_version text;
alter table job_attempts add column plugin_version text;

-- What a shadow version made of live requests, beside what the pinned version made of them.
create table shadow_results (
    id text primary key,
    connection_id text not null,
    raw_request_id text not null,
    primary_version text not null,
    candidate_version text not null,
    same integer not null,
    -- JSON list of the paths that differ.
    differences text not null,
    primary_result text not null,
    candidate_result text not null,
    created_at_ms integer not null
);
create index shadow_results_connection_idx on shadow_results (connection_id, created_at_ms);
