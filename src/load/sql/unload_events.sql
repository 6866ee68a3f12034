with removed as (
    delete from elt.events
    where load_id = $1
    returning event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at
)
insert into changed_events (event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at)
select event_id_uuid, event_id_text, event_type, customer_id, user_id, fired_at from removed
