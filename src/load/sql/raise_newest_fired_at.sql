insert into elt.customer_newest_fired_at (customer_id, newest_fired_at)
select customer_id, max(fired_at)
from changed_events
group by customer_id
on conflict (customer_id) do update
set newest_fired_at = greatest(customer_newest_fired_at.newest_fired_at, excluded.newest_fired_at)
