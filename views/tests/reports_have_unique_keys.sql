-- Each report has at most one row per customer and hour.
select 'page_loads' as report, customer_id, hour, count(*) as rows
from reports.page_loads group by customer_id, hour having count(*) > 1
union all
select 'clicks', customer_id, hour, count(*)
from reports.clicks group by customer_id, hour having count(*) > 1
union all
select 'unique_user_clicks', customer_id, hour, count(*)
from reports.unique_user_clicks group by customer_id, hour having count(*) > 1
union all
select 'click_through_rate', customer_id, hour, count(*)
from reports.click_through_rate group by customer_id, hour having count(*) > 1
