-- Each customer's bound of the newest fired_at loaded, raised to cover `batch_events` (the
-- batch's new events: a CTE that merge.rs puts before this statement, which is a statement of
-- its own or the last CTE of the merge statement). A customer without a row (events loaded before the table existed, or a bulk
-- finish interrupted before it recorded the bounds) gets the newest fired_at of all its events,
-- not only the batch's (one step of the refresh index): a bound must be at least every event's.
insert into elt.customer_newest_fired_at (customer_id, newest_fired_at)
select
    batch.customer_id,
    greatest(
        batch.newest_fired_at,
        case when loaded.customer_id is null then (
            select max(events.fired_at) from elt.events where events.customer_id = batch.customer_id
        ) end
    )
from (
    select customer_id, max(fired_at) as newest_fired_at
    from batch_events
    group by customer_id
) as batch
left join elt.customer_newest_fired_at as loaded
    on loaded.customer_id = batch.customer_id
on conflict (customer_id) do update
set newest_fired_at = greatest(customer_newest_fired_at.newest_fired_at, excluded.newest_fired_at)
