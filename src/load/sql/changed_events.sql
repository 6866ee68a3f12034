-- The session's scratch table of the events a batch added (or an unload removed, or a refresh
-- reads from its queue): the columns of the refresh's queue, elt.unrefreshed_events.
create temporary table if not exists changed_events (like elt.unrefreshed_events);
truncate changed_events;
