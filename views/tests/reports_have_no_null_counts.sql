-- test: keys and counts are never NULL; click_through_rate is NULL exactly when an hour has no
-- page loads
-- grain: one row per offending report row (zero rows = pass)
-- sources: reports.page_loads, reports.clicks, reports.unique_user_clicks, reports.click_through_rate
-- scope: per key
-- owner: analytics
--
-- A row with a NULL key belongs to no key, so a run that tests only the refreshed keys cannot see
-- one; only a rebuild can write one (an incremental refresh inserts the rows of its keys), and
-- after a rebuild this test reads every row.

with page_loads as (
    select * from reports.page_loads
),

clicks as (
    select * from reports.clicks
),

unique_user_clicks as (
    select * from reports.unique_user_clicks
),

click_through_rate as (
    select * from reports.click_through_rate
),

final as (
    select
        'page_loads' as report,
        customer_id,
        hour
    from page_loads
    where customer_id is null or hour is null or page_loads is null
    union all
    select
        'clicks' as report,
        customer_id,
        hour
    from clicks
    where customer_id is null or hour is null or clicks is null
    union all
    select
        'unique_user_clicks' as report,
        customer_id,
        hour
    from unique_user_clicks
    where customer_id is null or hour is null or unique_user_clicks is null
    union all
    select
        'click_through_rate' as report,
        customer_id,
        hour
    from click_through_rate
    where customer_id is null
        or hour is null
        or page_loads is null
        or related_clicks is null
        or (click_through_rate is null) <> (page_loads = 0)
)

select * from final
