-- test: every report hour is the start of a UTC hour, whatever the session's TimeZone
-- grain: one row per offending report row (zero rows = pass)
-- sources: reports.page_loads, reports.clicks, reports.unique_user_clicks, reports.click_through_rate
-- scope: per key
-- owner: analytics

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

report_hours as (
    select
        'page_loads' as report,
        customer_id,
        hour
    from page_loads
    union all
    select
        'clicks' as report,
        customer_id,
        hour
    from clicks
    union all
    select
        'unique_user_clicks' as report,
        customer_id,
        hour
    from unique_user_clicks
    union all
    select
        'click_through_rate' as report,
        customer_id,
        hour
    from click_through_rate
),

final as (
    select
        report,
        customer_id,
        hour
    from report_hours
    where hour <> date_trunc('hour', hour, 'UTC')
)

select * from final
