-- test: a click is counted at most once, so an hour cannot have more related clicks than clicks
-- grain: one row per offending customer and UTC hour (zero rows = pass)
-- sources: reports.click_through_rate, reports.clicks
-- scope: per key
-- owner: analytics

with click_through_rate as (
    select * from reports.click_through_rate
),

clicks as (
    select * from reports.clicks
),

final as (
    select
        click_through_rate.customer_id,
        click_through_rate.hour,
        click_through_rate.related_clicks,
        coalesce(clicks.clicks, 0) as clicks
    from click_through_rate
    left join clicks
        on click_through_rate.customer_id = clicks.customer_id
        and click_through_rate.hour = clicks.hour
    where click_through_rate.related_clicks > coalesce(clicks.clicks, 0)
)

select * from final
