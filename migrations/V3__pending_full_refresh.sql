-- A settings change needs a full refresh; this flag keeps that need durable until a refresh
-- has rebuilt everything (a run that dies in between leaves it set for the next one).
alter table elt.settings
    add column full_refresh_pending boolean not null default false;
