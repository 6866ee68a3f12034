-- (after merge_first_occurrences.sql) The new events, into the changed_events scratch table for
-- the stale-keys queries.
changed as (
    insert into changed_events (event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at)
    select event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at from inserted
)
select count(*) from inserted
