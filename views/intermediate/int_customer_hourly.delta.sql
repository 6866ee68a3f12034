-- delta of: intermediate.int_customer_hourly
-- grain: one row per (customer, UTC hour) key whose row the new events change, with how much
--        each measure grows
-- sources: changed_events (provided by campaign-elt), staging.stg_events,
--          elt.customer_newest_fired_at, elt.settings, intermediate.int_customer_hourly (as the
--          last refresh left it)
-- owner: analytics
--
-- The model's four measures, seen from the events loaded since the last refresh. campaign-elt
-- provides `changed_events` (those events: event_id_uuid, event_id_text, event_type,
-- customer_id, user_id, fired_at; every one of them is in elt.events too) and adds each row here to
-- the model's row of the same key (inserting a key that has none), instead of recomputing the
-- keys from all of their events: a night's cost follows the night's events, not the hours its
-- late lines land in. Keys that something else changed (an unload) are recomputed by the model
-- itself, after this. Edit it together with the model and its stale-keys file: the tests
-- compare incremental refreshes with full ones, and editing any of them rebuilds the model.
--
-- "Earlier" below means loaded before the new events (the events without changed_events); the
-- model's row of a key holds exactly the earlier events' measures. changed_events holds every
-- new event of elt.events, and the probes read staging.stg_events, as the model does: a
-- staging model that leaves events out must have this file leave the same ones out of
-- changed_events (or the model must drop its `-- delta:` line and be recomputed instead).
--   page_loads, clicks: the new page loads and clicks.
--   unique_user_clicks: the users whose first click in the hour is new — every new clicking
--     user in an hour the model had no row for, else those whose clicks in the hour are all new
--     (one index probe of the hour per such user).
--   related_clicks: the new clicks the rule relates (over all events, as the model relates
--     them), plus the earlier clicks that a new page load relates and no earlier page load did.
--     Those earlier clicks are found from the new page loads by the rule (one probe of the
--     primary key and one of the refresh index each); only
--     page loads at or before their customer's elt.customer_newest_fired_at.refreshed_fired_at
--     (the newest fired_at the last refresh had seen, or higher; NULL: no bound) can relate to
--     an earlier click. One was related before when its same-id page load is earlier, or when
--     its window holds more page loads than the new ones that relate it.

with settings as (
    select make_interval(secs => click_through_window_seconds) as click_through_window
    from elt.settings
),

new_events as (
    select
        changed_events.*,
        date_trunc('hour', changed_events.fired_at, 'UTC') as hour
    from changed_events
    where changed_events.event_type in ('ReferralPageLoad', 'ReferralRecommendClick')
),

new_clicks as (
    select * from new_events where event_type = 'ReferralRecommendClick'
),

-- page_loads and clicks.
new_event_counts as (
    select
        customer_id,
        hour,
        count(*) filter (where event_type = 'ReferralPageLoad') as page_loads,
        count(*) filter (where event_type = 'ReferralRecommendClick') as clicks
    from new_events
    group by customer_id, hour
),

-- unique_user_clicks: the users clicking in an hour for the first time.
new_click_users as (
    select customer_id, hour, user_id, count(*) as new_clicks
    from new_clicks
    group by customer_id, hour, user_id
),

first_time_click_users as (
    select
        new_click_users.customer_id,
        new_click_users.hour,
        count(*) as unique_user_clicks
    from new_click_users
    left join intermediate.int_customer_hourly as before
        on before.customer_id = new_click_users.customer_id
        and before.hour = new_click_users.hour
    where before.customer_id is null
        or new_click_users.new_clicks = (
            select count(*)
            from staging.stg_events as events
            where events.customer_id = new_click_users.customer_id
                and events.fired_at >= new_click_users.hour
                and events.fired_at < new_click_users.hour + interval '1 hour'
                and events.user_id = new_click_users.user_id
                and events.event_type = 'ReferralRecommendClick'
        )
    group by new_click_users.customer_id, new_click_users.hour
),

-- related_clicks of the new clicks: the model's rule, one probe per rule and click.
new_related_clicks as (
    select
        clicks.customer_id,
        clicks.hour,
        count(*) as related_clicks
    from new_clicks as clicks
    where exists (
            select 1
            from staging.stg_events as same_id_page_loads
            where same_id_page_loads.event_id_uuid = clicks.event_id_uuid
                and same_id_page_loads.event_id_text = clicks.event_id_text
                and same_id_page_loads.event_type = 'ReferralPageLoad'
                and same_id_page_loads.customer_id = clicks.customer_id
                and same_id_page_loads.user_id = clicks.user_id
                and same_id_page_loads.fired_at <= clicks.fired_at
        )
        or exists (
            select 1
            from staging.stg_events as window_page_loads
            where window_page_loads.customer_id = clicks.customer_id
                and window_page_loads.fired_at
                    >= clicks.fired_at - (select click_through_window from settings)
                and window_page_loads.fired_at <= clicks.fired_at
                and window_page_loads.user_id = clicks.user_id
                and window_page_loads.event_type = 'ReferralPageLoad'
        )
    group by clicks.customer_id, clicks.hour
),

-- related_clicks of earlier clicks: first the new page loads that can relate to one.
new_page_loads as (
    select new_events.*
    from new_events
    left join elt.customer_newest_fired_at as loaded
        on loaded.customer_id = new_events.customer_id
    where new_events.event_type = 'ReferralPageLoad'
        and (loaded.refreshed_fired_at is null or new_events.fired_at <= loaded.refreshed_fired_at)
),

-- Rule 1 from the page load: the click with its id (one probe of the primary key each).
same_id_candidates as (
    select clicks.*
    from new_page_loads
    cross join lateral (
        select
            events.event_id_uuid,
            events.event_id_text,
            events.customer_id,
            events.user_id,
            events.fired_at
        from staging.stg_events as events
        where events.event_id_uuid = new_page_loads.event_id_uuid
            and events.event_type = 'ReferralRecommendClick'
            and events.event_id_text = new_page_loads.event_id_text
            and events.customer_id = new_page_loads.customer_id
            and events.user_id = new_page_loads.user_id
            and events.fired_at >= new_page_loads.fired_at
        offset 0
    ) as clicks
),

-- Rule 2 from the page load: the clicks of its customer and user in [p, p + W] (one index
-- range probe each, which reads the index entries of the customer's window and fetches only
-- the user's events), with how many new page loads relate each.
window_candidates as (
    select
        clicks.event_id_uuid,
        clicks.event_id_text,
        clicks.customer_id,
        clicks.user_id,
        clicks.fired_at,
        count(*) as new_window_page_loads
    from new_page_loads
    cross join lateral (
        select
            events.event_id_uuid,
            events.event_id_text,
            events.customer_id,
            events.user_id,
            events.fired_at
        from staging.stg_events as events
        where events.customer_id = new_page_loads.customer_id
            and events.fired_at >= new_page_loads.fired_at
            and events.fired_at
                <= new_page_loads.fired_at + (select click_through_window from settings)
            and events.user_id = new_page_loads.user_id
            and events.event_type = 'ReferralRecommendClick'
        offset 0
    ) as clicks
    group by
        clicks.event_id_uuid, clicks.event_id_text, clicks.customer_id, clicks.user_id,
        clicks.fired_at
),

-- Each earlier click a new page load relates, once (the new clicks are counted above).
earlier_candidates as (
    select
        event_id_uuid,
        event_id_text,
        customer_id,
        user_id,
        fired_at,
        max(new_window_page_loads) as new_window_page_loads,
        bool_or(has_new_same_id_page_load) as has_new_same_id_page_load
    from (
        select *, false as has_new_same_id_page_load from window_candidates
        union all
        select *, 0 as new_window_page_loads, true as has_new_same_id_page_load
        from same_id_candidates
    ) as candidates
    group by event_id_uuid, event_id_text, customer_id, user_id, fired_at
),

earlier_clicks as (
    select earlier_candidates.*
    from earlier_candidates
    where not exists (
        select 1
        from new_clicks
        where new_clicks.event_id_uuid = earlier_candidates.event_id_uuid
            and new_clicks.event_id_text = earlier_candidates.event_id_text
    )
),

-- Those no earlier page load related: neither an earlier page load with the click's id (a
-- page load id is unique: when the new page loads hold it, no earlier one does) nor more
-- page loads in the click's window than the new ones found above.
newly_related_earlier_clicks as (
    select
        customer_id,
        date_trunc('hour', fired_at, 'UTC') as hour,
        count(*) as related_clicks
    from earlier_clicks as clicks
    where not (
        (
            not clicks.has_new_same_id_page_load
            and exists (
                select 1
                from staging.stg_events as same_id_page_loads
                where same_id_page_loads.event_id_uuid = clicks.event_id_uuid
                    and same_id_page_loads.event_id_text = clicks.event_id_text
                    and same_id_page_loads.event_type = 'ReferralPageLoad'
                    and same_id_page_loads.customer_id = clicks.customer_id
                    and same_id_page_loads.user_id = clicks.user_id
                    and same_id_page_loads.fired_at <= clicks.fired_at
            )
        )
        or (
            select count(*)
            from staging.stg_events as window_page_loads
            where window_page_loads.customer_id = clicks.customer_id
                and window_page_loads.fired_at
                    >= clicks.fired_at - (select click_through_window from settings)
                and window_page_loads.fired_at <= clicks.fired_at
                and window_page_loads.user_id = clicks.user_id
                and window_page_loads.event_type = 'ReferralPageLoad'
        ) > clicks.new_window_page_loads
    )
    group by customer_id, date_trunc('hour', fired_at, 'UTC')
),

deltas as (
    select customer_id, hour, page_loads, clicks, 0 as unique_user_clicks, 0 as related_clicks
    from new_event_counts
    union all
    select customer_id, hour, 0, 0, unique_user_clicks, 0
    from first_time_click_users
    union all
    select customer_id, hour, 0, 0, 0, related_clicks
    from new_related_clicks
    union all
    select customer_id, hour, 0, 0, 0, related_clicks
    from newly_related_earlier_clicks
),

final as (
    select
        customer_id,
        hour,
        sum(page_loads)::bigint as page_loads,
        sum(clicks)::bigint as clicks,
        sum(unique_user_clicks)::bigint as unique_user_clicks,
        sum(related_clicks)::bigint as related_clicks
    from deltas
    group by customer_id, hour
)

select * from final
