-- test: each report has at most one row per customer and UTC hour
-- grain: one row per duplicated report key (zero rows = pass)
-- sources: reports.page_loads, reports.clicks, reports.unique_user_clicks, reports.click_through_rate
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

report_keys as (
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
        hour,
        count(*) as rows
    from report_keys
    group by report, customer_id, hour
    having count(*) > 1
)

select * from final
