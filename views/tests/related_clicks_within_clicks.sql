-- A click is counted at most once, so an hour cannot have more related clicks than clicks.
select
    click_through_rate.customer_id,
    click_through_rate.hour,
    click_through_rate.related_clicks,
    coalesce(clicks.clicks, 0) as clicks
from reports.click_through_rate
left join reports.clicks
    on clicks.customer_id = click_through_rate.customer_id
    and clicks.hour = click_through_rate.hour
where click_through_rate.related_clicks > coalesce(clicks.clicks, 0)
