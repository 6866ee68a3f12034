-- stale keys of: intermediate.int_customer_hourly
-- grain: one row per (customer, UTC hour) key that the changed events make stale beyond their own
-- sources: changed_events (provided by campaign-elt), elt.events, elt.settings
-- owner: analytics
--
-- The other half of the attribution rule in int_customer_hourly.sql: when a page load arrives
-- (or is unloaded), the clicks it relates to may sit in other hours, and those hours' rows
-- change too. campaign-elt provides `changed_events` (the events a batch added or an unload
-- removed: event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at), queues
-- the changed events' own (customer_id, hour) keys itself, and queues the rows of this query
-- with them, in the batch's transaction. Edit it together with the model: a click that the
-- model relates to a page load must be found here from that page load, or incremental
-- refreshes will disagree with full ones (the tests compare them).
--
-- A click is found when a changed page load of the same customer_id and user_id fired at or
-- before it and either
--   1. has the same event id (no maximum gap), or
--   2. fired at most W seconds before it (W = elt.settings.click_through_window_seconds).
-- Only clicks at or after each customer's earliest changed page load are candidates: an index
-- range scan that stays small for logs in time order, instead of one probe per page load.

with changed_page_loads as (
    select *
    from changed_events
    where event_type = 'ReferralPageLoad'
),

earliest_changed_page_loads as (
    select
        customer_id,
        min(fired_at) as earliest_fired_at
    from changed_page_loads
    group by customer_id
),

later_clicks as (
    select
        clicks.event_id_uuid,
        clicks.event_id_text,
        clicks.customer_id,
        clicks.user_id,
        clicks.fired_at
    from earliest_changed_page_loads
    inner join elt.events as clicks
        on clicks.customer_id = earliest_changed_page_loads.customer_id
        and clicks.fired_at >= earliest_changed_page_loads.earliest_fired_at
    where clicks.event_type = 'ReferralRecommendClick'
),

settings as (
    select make_interval(secs => click_through_window_seconds) as click_through_window
    from elt.settings
),

related_clicks as (
    select
        later_clicks.customer_id,
        later_clicks.fired_at
    from later_clicks
    inner join changed_page_loads
        on changed_page_loads.customer_id = later_clicks.customer_id
        and changed_page_loads.user_id = later_clicks.user_id
        and changed_page_loads.fired_at <= later_clicks.fired_at
    where (
            changed_page_loads.event_id_uuid = later_clicks.event_id_uuid
            and changed_page_loads.event_id_text = later_clicks.event_id_text
        )
        or later_clicks.fired_at
            <= changed_page_loads.fired_at + (select click_through_window from settings)
),

final as (
    select distinct
        customer_id,
        date_trunc('hour', fired_at, 'UTC') as hour
    from related_clicks
)

select * from final
