-- Every report hour is the start of a UTC hour, whatever the session's TimeZone.
select 'page_loads' as report, customer_id, hour
from reports.page_loads where hour <> date_trunc('hour', hour, 'UTC')
union all
select 'clicks', customer_id, hour
from reports.clicks where hour <> date_trunc('hour', hour, 'UTC')
union all
select 'unique_user_clicks', customer_id, hour
from reports.unique_user_clicks where hour <> date_trunc('hour', hour, 'UTC')
union all
select 'click_through_rate', customer_id, hour
from reports.click_through_rate where hour <> date_trunc('hour', hour, 'UTC')
