-- $1: whether the delta queries of the models describe these keys' change (a merge batch that
-- queues its events in elt.unrefreshed_events) or the models must recompute them (an unload).
-- A key already queued for recomputation stays queued for it.
insert into elt.stale_keys (customer_id, hour, delta_covered)
select distinct customer_id, date_trunc('hour', fired_at, 'UTC') as hour, $1::boolean
from changed_events
on conflict (customer_id, hour) do update
set delta_covered = false
where stale_keys.delta_covered and not excluded.delta_covered
