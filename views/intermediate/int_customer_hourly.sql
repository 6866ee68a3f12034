-- materialized: incremental
-- stale keys: int_customer_hourly.stale_keys.sql
-- delta: int_customer_hourly.delta.sql
-- grain: one row per customer and UTC hour with at least one page load or click
-- sources: staging.stg_events, elt.settings (click_through_window_seconds)
-- owner: analytics
--
-- One pass over the events of the stale (customer, hour) keys computes all four report
-- measures. campaign-elt provides `stale_ranges (customer_id, starts_at, ends_at)`, the time
-- ranges whose rows this refresh recomputes, and `refresh_mode (is_full_refresh)`. The two
-- kinds of refresh read the events differently — a full one everything in a few hash joins,
-- an incremental one only the stale ranges through the indexes — and PostgreSQL drops the
-- branch that does not apply when it plans the statement (`is_full_refresh` is a constant).
-- Both branches must compute the same thing: the tests compare incremental refreshes with
-- full ones.
--
-- A click is related to a page load when
--   1. a ReferralPageLoad with the same event_id, customer_id and user_id fired at or before
--      it (no maximum gap; ids compare as stored: event_id_uuid and event_id_text), or
--   2. any ReferralPageLoad of the same customer_id and user_id fired 0..W seconds before it,
--      W = elt.settings.click_through_window_seconds.
-- A click counts once, in its own hour, however many page loads qualify.
--
-- Which keys a new page load makes stale (the hours of the clicks it relates to) is the same
-- rule seen from the page load: it lives beside this file, in int_customer_hourly.stale_keys.sql
-- (declared above), which serves `unload`. How much the four measures grow with new events is
-- int_customer_hourly.delta.sql, which the nightly refresh applies instead of recomputing the
-- keys the new events touch. Change the rule in all three files; the tests compare incremental
-- refreshes with full ones, and editing any of them rebuilds this model.

with settings as (
    select make_interval(secs => click_through_window_seconds) as click_through_window
    from elt.settings
),

-- Full refresh: every page load and click, in one scan.
all_events as not materialized (
    select stg_events.*
    from staging.stg_events
    cross join refresh_mode
    where refresh_mode.is_full_refresh
        and stg_events.event_type in ('ReferralPageLoad', 'ReferralRecommendClick')
),

-- Incremental refresh: for each stale range, that customer's events in it — an index range
-- scan per range, so a refresh reads the stale hours, not the history. (`offset 0` keeps
-- PostgreSQL from turning the lateral subquery back into a join, which it may plan as a scan
-- of all events; `materialized` reads the ranges once for both uses below.)
stale_range_events as materialized (
    select events_in_range.*
    from stale_ranges
    cross join refresh_mode
    cross join lateral (
        select *
        from staging.stg_events
        where stg_events.customer_id = stale_ranges.customer_id
            and stg_events.fired_at >= stale_ranges.starts_at
            and stg_events.fired_at < stale_ranges.ends_at
            and stg_events.event_type in ('ReferralPageLoad', 'ReferralRecommendClick')
        offset 0
    ) as events_in_range
    where not refresh_mode.is_full_refresh
),

stale_events as (
    select * from all_events
    union all
    select * from stale_range_events
),

-- Rule 1 for each stale click.
clicks as (
    -- Full refresh: all clicks at once, in one hash join (a click has at most one same-id page
    -- load: (event_id, event_type) is unique).
    select
        clicks.customer_id,
        clicks.hour,
        clicks.user_id,
        clicks.fired_at,
        same_id_page_loads.event_id_uuid is not null as has_same_id_page_load
    from all_events as clicks
    left join staging.stg_events as same_id_page_loads
        on same_id_page_loads.event_id_uuid = clicks.event_id_uuid
        and same_id_page_loads.event_id_text = clicks.event_id_text
        and same_id_page_loads.event_type = 'ReferralPageLoad'
        and same_id_page_loads.customer_id = clicks.customer_id
        and same_id_page_loads.user_id = clicks.user_id
        and same_id_page_loads.fired_at <= clicks.fired_at
    where clicks.event_type = 'ReferralRecommendClick'

    union all

    -- Incremental refresh: each stale click looks up its same-id page load in the primary key.
    select
        clicks.customer_id,
        clicks.hour,
        clicks.user_id,
        clicks.fired_at,
        exists (
            select 1
            from staging.stg_events as same_id_page_loads
            where same_id_page_loads.event_id_uuid = clicks.event_id_uuid
                and same_id_page_loads.event_id_text = clicks.event_id_text
                and same_id_page_loads.event_type = 'ReferralPageLoad'
                and same_id_page_loads.customer_id = clicks.customer_id
                and same_id_page_loads.user_id = clicks.user_id
                and same_id_page_loads.fired_at <= clicks.fired_at
        ) as has_same_id_page_load
    from stale_range_events as clicks
    where clicks.event_type = 'ReferralRecommendClick'
),

-- Rule 2, asked only of clicks that rule 1 did not relate: an index range scan per click.
attributed_clicks as (
    select
        customer_id,
        hour,
        user_id,
        has_same_id_page_load
        or exists (
            select 1
            from staging.stg_events as window_page_loads
            where window_page_loads.customer_id = clicks.customer_id
                and window_page_loads.fired_at
                    >= clicks.fired_at - (select click_through_window from settings)
                and window_page_loads.fired_at <= clicks.fired_at
                and window_page_loads.user_id = clicks.user_id
                and window_page_loads.event_type = 'ReferralPageLoad'
        ) as is_related_click
    from clicks
),

-- Page loads and clicks per hour: a hash aggregate over every stale event.
event_counts as (
    select
        customer_id,
        hour,
        count(*) filter (where event_type = 'ReferralPageLoad') as page_loads,
        count(*) filter (where event_type = 'ReferralRecommendClick') as clicks
    from stale_events
    group by customer_id, hour
),

-- Unique clicking users and related clicks per hour: over the clicks only.
click_counts as (
    select
        customer_id,
        hour,
        count(distinct user_id) as unique_user_clicks,
        count(*) filter (where is_related_click) as related_clicks
    from attributed_clicks
    group by customer_id, hour
),

final as (
    select
        event_counts.customer_id,
        event_counts.hour,
        event_counts.page_loads,
        event_counts.clicks,
        coalesce(click_counts.unique_user_clicks, 0) as unique_user_clicks,
        coalesce(click_counts.related_clicks, 0) as related_clicks
    from event_counts
    left join click_counts
        on click_counts.customer_id = event_counts.customer_id
        and click_counts.hour = event_counts.hour
)

select * from final
