-- campaign-elt's own schema: the loaded events and the bookkeeping around them.
-- Schema only: report logic lives in views/. Never edit this file once released; add V2__….sql.

create schema if not exists elt;
create schema if not exists reports;

-- Settings that change what the reports mean; one row, pinned by the first run.
create table elt.settings (
    is_singleton boolean primary key default true check (is_singleton),
    click_through_window_seconds integer not null check (click_through_window_seconds >= 0),
    source_time_zone text not null,
    accepted_event_types text[] not null,
    updated_at timestamptz not null default now()
);

-- One row per command that touched the data (run, load, refresh, unload).
create table elt.runs (
    run_id bigint generated always as identity primary key,
    command text not null,
    started_at timestamptz not null default clock_timestamp(),
    finished_at timestamptz,
    status text not null default 'running'
        check (status in ('running', 'succeeded', 'failed', 'interrupted')),
    exit_code integer,
    summary jsonb
);

-- The ledger: one row per loaded file (or standard input), updated batch by batch.
create table elt.loads (
    load_id bigint generated always as identity primary key,
    run_id bigint not null references elt.runs (run_id),
    file_position integer not null,
    path text not null,
    size_bytes bigint,
    content_hash bytea,
    start_offset bigint not null default 0,
    first_line_number bigint not null default 1,
    committed_offset bigint not null default 0,
    committed_line_number bigint not null default 0,
    lines bigint not null default 0,
    loaded bigint not null default 0,
    duplicates bigint not null default 0,
    rejected bigint not null default 0,
    blank bigint not null default 0,
    ends_with_newline boolean,
    status text not null default 'loading'
        check (status in ('loading', 'loaded', 'failed', 'unloaded')),
    started_at timestamptz not null default clock_timestamp(),
    finished_at timestamptz
);
create index loads_content_hash on elt.loads (content_hash);
create index loads_path on elt.loads (path);

-- Deduplicated events: the first occurrence of (event_id, event_type) in load order.
-- (load_id, line_number) says where that first occurrence came from.
-- Ids and types compare byte by byte (collation "C"): they are identifiers, not prose, and
-- byte order makes the key's sorts and index inserts much cheaper.
create table elt.events (
    event_id text collate "C" not null,
    event_type text collate "C" not null,
    customer_id bigint not null,
    user_id bigint not null,
    fired_at timestamptz not null,
    load_id bigint not null,
    line_number bigint not null,
    primary key (event_id, event_type)
);
-- Serves the incremental refresh: events of a customer in a time range (stale hours, the
-- attribution window), with the columns the attribution needs for index-only scans.
create index events_customer_id_fired_at on elt.events (customer_id, fired_at)
    include (user_id, event_type);
-- Serves `unload --load-id`: events arrive in load order, so a BRIN index is nearly free.
create index events_load_id on elt.events using brin (load_id);

-- Lines that could not be loaded, kept as raw bytes so nothing is lost.
create table elt.rejects (
    load_id bigint not null references elt.loads (load_id),
    line_number bigint not null,
    reason text not null,
    detail text not null,
    raw_line bytea not null,
    line_length bigint not null,
    primary key (load_id, line_number)
);
create index rejects_reason on elt.rejects (reason);

-- Load buffer: one batch of classified lines, filled by binary COPY, emptied by the merge.
-- Unlogged: it never holds anything that is not also in the input file.
create unlogged table elt.staged_lines (
    line_number bigint not null,
    event_id text collate "C",
    event_type text collate "C",
    customer_id bigint,
    user_id bigint,
    fired_at timestamptz,
    reject_reason text,
    reject_detail text,
    raw_line bytea,
    line_length bigint
);

-- Durable queue of report keys that loaded events made stale; refresh drains it.
create table elt.stale_keys (
    customer_id bigint not null,
    hour timestamptz not null,
    queued_at timestamptz not null default now(),
    primary key (customer_id, hour)
);

-- One row per refresh of the report relations.
create table elt.refreshes (
    refresh_id bigint generated always as identity primary key,
    run_id bigint references elt.runs (run_id),
    is_full_refresh boolean not null,
    started_at timestamptz not null default clock_timestamp(),
    finished_at timestamptz,
    recomputed_keys bigint not null default 0,
    events_read bigint not null default 0,
    rebuilt_relations text[] not null default '{}'
);

-- The (customer, hour) keys each incremental refresh recomputed.
create table elt.refresh_keys (
    refresh_id bigint not null references elt.refreshes (refresh_id) on delete cascade,
    customer_id bigint not null,
    hour timestamptz not null,
    primary key (refresh_id, customer_id, hour)
);

-- Relations created from views/ by the tool; it drops only what is listed here.
create table elt.managed_relations (
    relation_name text primary key,
    materialized text not null,
    checksum text not null,
    source_path text not null,
    built_at timestamptz not null default now()
);
