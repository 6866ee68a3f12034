-- materialized: incremental
-- grain: one row per customer and UTC hour with at least one page load or click
-- sources: staging.stg_events, elt.settings (click_through_window_seconds)
-- owner: analytics
--
-- One pass over the events of the stale (customer, hour) keys computes all four report
-- measures. `stale_ranges (customer_id, starts_at, ends_at)` is provided by campaign-elt: the
-- time ranges whose rows this refresh recomputes (every range on a full refresh).
--
-- A click is related to a page load when
--   1. a ReferralPageLoad with the same event_id, customer_id and user_id fired at or before
--      it (no maximum gap), or
--   2. any ReferralPageLoad of the same customer_id and user_id fired 0..W seconds before it,
--      W = elt.settings.click_through_window_seconds.
-- A click counts once, in its own hour, however many page loads qualify.

with settings as (
    select make_interval(secs => click_through_window_seconds) as click_through_window
    from elt.settings
),

-- For each stale range, that customer's events in it: an index range scan per range, so a
-- refresh reads the stale hours, not the history. (`offset 0` keeps PostgreSQL from turning
-- the lateral subquery back into a join, which it may plan as a scan of all events.)
stale_events as (
    select events_in_range.*
    from stale_ranges
    cross join lateral (
        select *
        from staging.stg_events
        where stg_events.customer_id = stale_ranges.customer_id
            and stg_events.fired_at >= stale_ranges.starts_at
            and stg_events.fired_at < stale_ranges.ends_at
            and stg_events.event_type in ('ReferralPageLoad', 'ReferralRecommendClick')
        offset 0
    ) as events_in_range
),

attributed_events as (
    select
        stale_events.customer_id,
        stale_events.hour,
        stale_events.event_type,
        stale_events.user_id,
        stale_events.event_type = 'ReferralRecommendClick'
        and (
            exists (
                select 1
                from staging.stg_events as same_id_page_loads
                where same_id_page_loads.event_id = stale_events.event_id
                    and same_id_page_loads.event_type = 'ReferralPageLoad'
                    and same_id_page_loads.customer_id = stale_events.customer_id
                    and same_id_page_loads.user_id = stale_events.user_id
                    and same_id_page_loads.fired_at <= stale_events.fired_at
            )
            or exists (
                select 1
                from staging.stg_events as window_page_loads
                where window_page_loads.customer_id = stale_events.customer_id
                    and window_page_loads.fired_at
                        >= stale_events.fired_at - (select click_through_window from settings)
                    and window_page_loads.fired_at <= stale_events.fired_at
                    and window_page_loads.user_id = stale_events.user_id
                    and window_page_loads.event_type = 'ReferralPageLoad'
            )
        ) as is_related_click
    from stale_events
),

final as (
    select
        customer_id,
        hour,
        count(*) filter (where event_type = 'ReferralPageLoad') as page_loads,
        count(*) filter (where event_type = 'ReferralRecommendClick') as clicks,
        count(distinct user_id) filter (where event_type = 'ReferralRecommendClick') as unique_user_clicks,
        count(*) filter (where is_related_click) as related_clicks
    from attributed_events
    group by customer_id, hour
)

select * from final
