-- materialized: view
-- grain: one row per event, deduplicated: the first occurrence of (event_id, event_type) in load order
-- sources: elt.events (loaded by campaign-elt)
-- owner: analytics
-- `hour` is the start of the event's UTC hour, whatever the session's TimeZone.

with events as (
    select * from elt.events
),

final as (
    select
        event_id,
        event_type,
        customer_id,
        user_id,
        fired_at,
        date_trunc('hour', fired_at, 'UTC') as hour
    from events
)

select * from final
