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
-- As raise_newest_fired_at.sql: a customer without a row gets the newest fired_at of all its
-- events (this statement's elt.events is the one before its own inserts, hence the greatest).
raised_bounds as (
    insert into elt.customer_newest_fired_at (customer_id, newest_fired_at)
    select
        batch.customer_id,
        greatest(
            batch.newest_fired_at,
            case when loaded.customer_id is null then (
                select max(events.fired_at)
                from elt.events
                where events.customer_id = batch.customer_id
            ) end
        )
    from (
        select customer_id, max(fired_at) as newest_fired_at
        from inserted
        group by customer_id
    ) as batch
    left join elt.customer_newest_fired_at as loaded
        on loaded.customer_id = batch.customer_id
    on conflict (customer_id) do update
    set newest_fired_at = greatest(customer_newest_fired_at.newest_fired_at, excluded.newest_fired_at)
)
select count(*) from inserted
