-- materialized: view
-- grain: one row per event, deduplicated: the first occurrence of (event_id, event_type) in load order
-- sources: elt.events (loaded by campaign-elt)
-- owner: analytics
-- `hour` is the start of the event's UTC hour, whatever the session's TimeZone.
-- ip and email are never stored; with a key, their keyed hashes allow distinct counts.

with events as (
    select * from elt.events
),

final as (
    select
        -- the event id as it arrived; joins on ids compare event_id_uuid and event_id_text,
        -- how elt.events stores it (a uuid when the id is canonical UUID text), which the
        -- primary key indexes
        elt.event_id(event_id_uuid, event_id_text) as event_id,
        event_id_uuid,
        event_id_text,
        event_type,
        customer_id,
        user_id,
        fired_at,
        date_trunc('hour', fired_at, 'UTC') as hour,
        -- keyed hashes of ip and email, NULL unless the operator configured a key
        ip_hash,
        email_hash
    from events
)

select * from final
