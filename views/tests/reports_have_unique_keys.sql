-- test: each report has at most one row per customer and UTC hour
-- grain: one row per duplicated report key (zero rows = pass)
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

-- Each report grouped on its own: grouping the four in one union would hash a text label with
-- every key, three times the work on the same rows.
final as (
    select
        'page_loads' as report,
        customer_id,
        hour,
        count(*) as rows
    from page_loads
    group by customer_id, hour
    having count(*) > 1
    union all
    select
        'clicks' as report,
        customer_id,
        hour,
        count(*) as rows
    from clicks
    group by customer_id, hour
    having count(*) > 1
    union all
    select
        'unique_user_clicks' as report,
        customer_id,
        hour,
        count(*) as rows
    from unique_user_clicks
    group by customer_id, hour
    having count(*) > 1
    union all
    select
        'click_through_rate' as report,
        customer_id,
        hour,
        count(*) as rows
    from click_through_rate
    group by customer_id, hour
    having count(*) > 1
)

select * from final
