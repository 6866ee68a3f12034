insert into elt.stale_keys (customer_id, hour)
select distinct customer_id, date_trunc('hour', fired_at, 'UTC') as hour
from changed_events
on conflict (customer_id, hour) do nothing
