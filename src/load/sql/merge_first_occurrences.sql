-- The first occurrences among the staged batch's lines that no earlier batch or run loaded
-- (the primary key keeps the event already there), inserted into elt.events with load_id $1;
-- each statement that includes this selects from `inserted` after it.
with first_occurrences as (
    select distinct on (event_id_uuid, event_type, event_id_text)
        event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at, line_number,
        ip_hash, email_hash
    from elt.staged_lines
    where reject_reason is null
    order by event_id_uuid, event_type, event_id_text, line_number
),
inserted as (
    insert into elt.events (event_id_uuid, event_id_text, event_type, customer_id, user_id,
        fired_at, load_id, line_number, ip_hash, email_hash)
    select event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at, $1,
        line_number, ip_hash, email_hash
    from first_occurrences
    on conflict (event_id_uuid, event_type, event_id_text) do nothing
    returning event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at, line_number
),
