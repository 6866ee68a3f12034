-- Rows exist only where their measure is positive.
select 'page_loads' as report, customer_id, hour from reports.page_loads where page_loads <= 0
union all
select 'clicks', customer_id, hour from reports.clicks where clicks <= 0
union all
select 'unique_user_clicks', customer_id, hour
from reports.unique_user_clicks where unique_user_clicks <= 0 or unique_user_clicks > (
    select coalesce(max(clicks.clicks), 0) from reports.clicks
    where clicks.customer_id = unique_user_clicks.customer_id and clicks.hour = unique_user_clicks.hour
)
