-- test: rows exist only where their measure is positive, and an hour has no more distinct
-- clicking users than clicks
-- grain: one row per offending report row (zero rows = pass)
-- sources: reports.page_loads, reports.clicks, reports.unique_user_clicks
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

final as (
    select
        'page_loads' as report,
        customer_id,
        hour
    from page_loads
    where page_loads <= 0
    union all
    select
        'clicks' as report,
        customer_id,
        hour
    from clicks
    where clicks <= 0
    union all
    select
        'unique_user_clicks' as report,
        unique_user_clicks.customer_id,
        unique_user_clicks.hour
    from unique_user_clicks
    left join clicks
        on clicks.customer_id = unique_user_clicks.customer_id
        and clicks.hour = unique_user_clicks.hour
    where unique_user_clicks.unique_user_clicks <= 0
        or unique_user_clicks.unique_user_clicks > coalesce(clicks.clicks, 0)
)

select * from final
