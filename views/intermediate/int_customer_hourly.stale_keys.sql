-- stale keys of: intermediate.int_customer_hourly
-- grain: one row per (customer, UTC hour) key that the changed events make stale beyond their own
-- sources: changed_events (provided by campaign-elt), elt.events, elt.customer_newest_fired_at,
--          elt.settings
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
--   1. has the same event id (no maximum gap): one probe of the primary key per page load, or
--   2. fired at most W seconds before it (W = elt.settings.click_through_window_seconds): an
--      index range scan of the customer's events within [p, p + W]; page loads less than W
--      apart share one scan, and a page load with an old fired_at (a backfill, a clock error)
--      reads only its own window.
-- Only page loads that fired at or before their customer's
-- elt.customer_newest_fired_at.newest_fired_at (as it was before the batch: the newest
-- fired_at loaded so far, or higher; no row: no bound) are looked up. A later page load cannot
-- relate to a click loaded before it, and the clicks loaded with it are queued as their own
-- keys; for logs in time order that leaves the late page loads. Nothing here reads events
-- outside those page loads' windows and ids: the cost follows the late page loads, not the
-- history. (`offset 0` keeps each lateral subquery a probe that PostgreSQL cannot turn back
-- into a join over all events.)

with settings as (
    select make_interval(secs => click_through_window_seconds) as click_through_window
    from elt.settings
),

changed_page_loads as (
    select changed_events.*
    from changed_events
    left join elt.customer_newest_fired_at as loaded
        on loaded.customer_id = changed_events.customer_id
    where changed_events.event_type = 'ReferralPageLoad'
        and (loaded.newest_fired_at is null or changed_events.fired_at <= loaded.newest_fired_at)
),

-- Rule 1: the clicks with a changed page load's own id.
same_id_clicks as (
    select
        clicks.customer_id,
        clicks.fired_at
    from changed_page_loads
    cross join lateral (
        select
            events.customer_id,
            events.fired_at
        from elt.events
        where events.event_id_uuid = changed_page_loads.event_id_uuid
            and events.event_type = 'ReferralRecommendClick'
            and events.event_id_text = changed_page_loads.event_id_text
            and events.customer_id = changed_page_loads.customer_id
            and events.user_id = changed_page_loads.user_id
            and events.fired_at >= changed_page_loads.fired_at
        offset 0
    ) as clicks
),

-- Rule 2: the time ranges [first page load, last page load + W] of each customer's changed
-- page loads, where a page load more than W after the one before starts a new range.
page_load_gaps as (
    select
        customer_id,
        fired_at,
        coalesce(
            fired_at > lag(fired_at) over customer_page_loads
                + (select click_through_window from settings),
            true
        ) as starts_range
    from changed_page_loads
    window customer_page_loads as (partition by customer_id order by fired_at)
),

page_load_ranges as (
    select
        customer_id,
        fired_at,
        count(*) filter (where starts_range) over (
            partition by customer_id order by fired_at rows unbounded preceding
        ) as range_number
    from page_load_gaps
),

window_ranges as (
    select
        customer_id,
        min(fired_at) as starts_at,
        max(fired_at) + (select click_through_window from settings) as ends_at
    from page_load_ranges
    group by customer_id, range_number
),

window_candidates as (
    select clicks.*
    from window_ranges
    cross join lateral (
        select
            events.customer_id,
            events.user_id,
            events.fired_at
        from elt.events
        where events.customer_id = window_ranges.customer_id
            and events.fired_at >= window_ranges.starts_at
            and events.fired_at <= window_ranges.ends_at
            and events.event_type = 'ReferralRecommendClick'
        offset 0
    ) as clicks
),

window_clicks as (
    select
        window_candidates.customer_id,
        window_candidates.fired_at
    from window_candidates
    where exists (
        select 1
        from changed_page_loads
        where changed_page_loads.customer_id = window_candidates.customer_id
            and changed_page_loads.user_id = window_candidates.user_id
            and changed_page_loads.fired_at <= window_candidates.fired_at
            and window_candidates.fired_at
                <= changed_page_loads.fired_at + (select click_through_window from settings)
    )
),

related_clicks as (
    select * from same_id_clicks
    union all
    select * from window_clicks
),

final as (
    select distinct
        customer_id,
        date_trunc('hour', fired_at, 'UTC') as hour
    from related_clicks
)

select * from final
