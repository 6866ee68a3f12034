create temporary table if not exists changed_events (
    event_id_uuid uuid not null,
    event_id_text text collate "C" not null,
    event_type text collate "C" not null,
    customer_id bigint not null,
    user_id bigint not null,
    fired_at timestamptz not null
);
truncate changed_events;
