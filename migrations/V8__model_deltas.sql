-- The nightly refresh applies a night's events to the hourly counts instead of recomputing every
-- (customer, hour) key they touch from all of its events (see docs/design.md, "A refresh applies
-- the new events' delta").
--
-- Each merge batch records the line range of the events it added; a refresh claims the ranges
-- (restored if it rolls back), reads those events back and hands them to the models that
-- declare a delta query (`-- delta: FILE`), which say how much each key's counts grow. The
-- events of one range are those of `load_id` with `line_number` between the bounds: a batch
-- adds the first occurrences among its own lines only.
create table elt.unrefreshed_lines (
    load_id bigint not null,
    first_line bigint not null,
    last_line bigint not null,
    primary key (load_id, first_line),
    constraint unrefreshed_lines_in_order check (first_line <= last_line)
);

-- A queued key whose change the unrefreshed lines describe (queued by a merge batch) needs no
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
