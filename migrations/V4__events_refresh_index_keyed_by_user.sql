-- The incremental refresh's index, narrower and cheaper to build: (customer_id, fired_at,
-- user_id) instead of (customer_id, fired_at) include (user_id, event_type).
--
-- The window rule's lookup (a customer's page loads of one user in a time range) now checks
-- user_id inside the index and visits the table only for that user's events; the stale-hour
-- reads fetch every column from the table anyway. Without event_type the index is 142 MB
-- instead of 234 MB on 3.67M events and builds about 15% faster, which a bulk first load pays
-- once and every nightly load pays per row.
drop index if exists elt.events_customer_id_fired_at;
create index events_customer_id_fired_at_user_id on elt.events (customer_id, fired_at, user_id);
