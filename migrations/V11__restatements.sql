-- Report rows that a refresh changed after an earlier refresh had published them: the old and
-- new values of a (customer, hour) row of a relation that records them (the four contract
-- reports, and models whose header says `-- restatements: recorded`), which refresh changed it
-- and why. A row that disappears is a restatement (new_values is NULL); a first appearance is
-- not. A full rebuild that changes more than 10,000 rows of a relation records one summary row
-- (customer_id, hour and the values NULL; changed_rows says how many).
create table elt.restatements (
    restatement_id bigint generated always as identity primary key,
    refresh_id bigint not null references elt.refreshes (refresh_id),
    relation text not null,
    customer_id bigint,
    hour timestamptz,
    -- The row's columns other than customer_id and hour, before and after.
    old_values jsonb,
    new_values jsonb,
    changed_rows bigint not null default 1 check (changed_rows > 0),
    -- late lines: lines loaded after the hour was published (late events, or the rest of an
    -- hour the previous load had begun); unload; settings change; full refresh; edited model
    -- (the relation's file or one it reads changed).
    cause text not null
        check (cause in ('late lines', 'unload', 'settings change', 'full refresh', 'edited model'))
);
create index restatements_refresh_id on elt.restatements (refresh_id);

-- What analysts see: the restatements with the time of the refresh that made them.
create view reports.restatements as
select
    restatements.restatement_id,
    restatements.refresh_id,
    refreshes.finished_at as refreshed_at,
    restatements.relation,
    restatements.customer_id,
    restatements.hour,
    restatements.old_values,
    restatements.new_values,
    restatements.changed_rows,
    restatements.cause
from elt.restatements
inner join elt.refreshes on refreshes.refresh_id = restatements.refresh_id;
