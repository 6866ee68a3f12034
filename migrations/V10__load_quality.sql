-- What the analysts may see of the loads: counts only, never a rejected line's bytes (which may
-- hold personal data) nor an event. `status` and the HTML report read these instead of counting
-- elt.events or elt.rejects whole.

-- Each load's rejected lines by reason, kept by every batch with the other counts (and so kept
-- when `purge-rejects` deletes the lines themselves). Loads from before this migration get the
-- counts of the rejected lines still stored.
alter table elt.loads add column rejected_by_reason jsonb not null default '{}';
update elt.loads
set rejected_by_reason = counted.by_reason
from (
    select load_id, jsonb_object_agg(reason, lines order by reason) as by_reason
    from (
        select load_id, reason, count(*) as lines
        from elt.rejects
        group by load_id, reason
    ) as per_reason
    group by load_id
) as counted
where loads.load_id = counted.load_id;

-- One row per load: where from, when, and what became of its lines.
create view reports.load_quality as
select
    load_id,
    path,
    status,
    started_at,
    finished_at,
    lines,
    loaded,
    duplicates,
    rejected,
    blank,
    rejected_by_reason
from elt.loads;

-- The customers that have events: one step through the refresh index per customer (a loose
-- index scan), not a scan of the events. With the owner's rights, so that reports.freshness can
-- call it for the analyst role; `setup-roles` grants execute.
create function elt.event_customers()
returns setof bigint
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
    with recursive customers as (
        (select events.customer_id from elt.events order by events.customer_id limit 1)
        union all
        select (
            select events.customer_id
            from elt.events
            where events.customer_id > customers.customer_id
            order by events.customer_id
            limit 1
        )
        from customers
        where customers.customer_id is not null
    )
    select customer_id from customers where customer_id is not null
$$;

-- One row: how fresh the reports are and what they were computed with. The newest fired_at is
-- one more step through the refresh index per customer. `status` reads it here; the analysts
-- read reports.freshness.
create view elt.freshness as
select
    (select max((select max(events.fired_at) from elt.events
                 where events.customer_id = customers.customer_id))
     from elt.event_customers() as customers (customer_id)) as newest_fired_at,
    (select max(finished_at) from elt.runs where status = 'succeeded') as last_run_at,
    (select max(finished_at) from elt.refreshes) as last_refresh_at,
    (select count(*) from elt.stale_keys) as stale_keys,
    settings.click_through_window_seconds,
    settings.source_time_zone,
    settings.accepted_event_types
from (select 1) as one
left join elt.settings on true;

create view reports.freshness as
select * from elt.freshness;

-- The distinct users who clicked (ReferralRecommendClick) per customer in [from_time, to_time):
-- over a range this is not the sum of the hourly unique_user_clicks. It reads the range of each
-- customer through the refresh index (and the heap for the type), never every event; the
-- owner's rights let the analyst role count without reading elt.events. Execute is granted by
-- `setup-roles`.
create function reports.clicking_users(from_time timestamptz, to_time timestamptz)
returns table (customer_id bigint, users bigint)
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
    select customers.customer_id, per_customer.users
    from elt.event_customers() as customers (customer_id)
    cross join lateral (
        select count(distinct events.user_id) as users
        from elt.events
        where events.customer_id = customers.customer_id
            and events.fired_at >= from_time
            and events.fired_at < to_time
            and events.event_type = 'ReferralRecommendClick'
    ) as per_customer
    where per_customer.users > 0
$$;
revoke execute on function reports.clicking_users(timestamptz, timestamptz) from public;
revoke execute on function elt.event_customers() from public;
