-- Keys and counts are never NULL (click_through_rate is NULL only without page loads).
select 'page_loads' as report, customer_id, hour
from reports.page_loads where customer_id is null or hour is null or page_loads is null
union all
select 'clicks', customer_id, hour
from reports.clicks where customer_id is null or hour is null or clicks is null
union all
select 'unique_user_clicks', customer_id, hour
from reports.unique_user_clicks where customer_id is null or hour is null or unique_user_clicks is null
union all
select 'click_through_rate', customer_id, hour
from reports.click_through_rate
where customer_id is null or hour is null or page_loads is null or related_clicks is null
    or (click_through_rate is null) <> (page_loads = 0)
