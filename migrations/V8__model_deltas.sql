-- The nightly refresh applies a night's events to the hourly counts instead of recomputing every
-- (customer, hour) key they touch from all of its events (see docs/design.md, "A refresh applies
-- the new events' delta").
--
-- Each merge batch appends the events it added (their first occurrences: ids, type, customer,
-- user, fired_at) to this queue, in its transaction; a refresh reads them as changed_events for
-- the models that declare a delta query (`-- delta: FILE`), which say how much each key's counts
-- grow, and empties the queue (restored if it rolls back). The events are written twice, but the
-- refresh reads only them — neither the history's pages nor an index of elt.events — whatever
-- space earlier deletes left in the table's pages (where new rows land among old ones).
create table elt.unrefreshed_events (
    event_id_uuid uuid not null,
    event_id_text text collate "C" not null,
    event_type text collate "C" not null,
    customer_id bigint not null,
    user_id bigint not null,
    fired_at timestamptz not null
);

-- A queued key whose change the unrefreshed events describe (queued by a merge batch) needs no
-- recomputation in the models with a delta query; one queued by anything else (`unload`, or a
-- batch from before this migration) does. A key queued both ways is recomputed.
alter table elt.stale_keys
    add column delta_covered boolean not null default false;

-- Each customer's bound as the last refresh saw it: every event loaded before that refresh
-- fired at or before it (NULL: no refresh has seen the customer's bound yet, so there is no
-- bound). A delta query looks up only the new page loads at or before it for earlier clicks
-- they may relate: a later one cannot relate to a click the last refresh already counted.
alter table elt.customer_newest_fired_at
    add column refreshed_fired_at timestamptz;
