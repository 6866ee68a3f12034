-- (after merge_first_occurrences.sql) A batch whose change the models' deltas take at the next
-- refresh (see merge.rs): the new events' own report keys, queued as covered by the delta (a key
-- queued for recomputation stays so); the new events, for the refresh's deltas
-- (elt.unrefreshed_events); and each customer's bound of the newest fired_at. One statement,
-- with no session scratch table.
queued_keys as (
    insert into elt.stale_keys (customer_id, hour, delta_covered)
    select distinct customer_id, date_trunc('hour', fired_at, 'UTC'), true
    from inserted
    on conflict (customer_id, hour) do nothing
),
unrefreshed_events as (
    insert into elt.unrefreshed_events (event_id_uuid, event_id_text, event_type, customer_id,
        user_id, fired_at)
    select event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at
    from inserted
),
-- Then each customer's bound (raise_newest_fired_at.sql over these events; merge.rs puts the
-- pieces together).
batch_events as (
    select customer_id, fired_at from inserted
),
raised_bounds as (
