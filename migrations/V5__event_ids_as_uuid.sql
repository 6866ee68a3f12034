-- Event ids as 16-byte uuids wherever the text allows it.
--
-- Event ids are nearly always canonical UUID text (lowercase hex, 8-4-4-4-12, with hyphens):
-- 36 bytes of text that fit in 16 bytes of `uuid`. The table, its primary key and the same-id
-- joins of the refresh all shrink with it; a bulk first load of 3.67M events builds a 202 MB key
-- instead of a 270 MB one into a 408 MB table instead of a 467 MB one. Only text that converts
-- back byte for byte is stored as a uuid: PostgreSQL's uuid input also takes upper case, braces
-- and missing hyphens, so `A…` and `a…` would become one event. Any other id is kept as text:
--
--   canonical UUID text   event_id_uuid = its uuid,  event_id_text = ''
--   anything else         event_id_uuid = the nil uuid (all zeros), event_id_text = the id
--
-- (An accepted id is never empty, so '' is free to mean "the uuid is the id".) The loader splits
-- ids the same way (src/ingest/event_id.rs; a test compares the two). elt.event_id() turns the
-- pair back into the id as it arrived, and staging.stg_events shows it as `event_id`.

create function elt.event_id_is_uuid(event_id text) returns boolean
    language sql immutable strict parallel safe
    as $$
        select (event_id collate "C")
            ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    $$;

create function elt.event_id_uuid(event_id text) returns uuid
    language sql immutable strict parallel safe
    as $$
        select case when elt.event_id_is_uuid(event_id) then event_id::uuid
                    else '00000000-0000-0000-0000-000000000000'::uuid end
    $$;

create function elt.event_id_text(event_id text) returns text
    language sql immutable strict parallel safe
    as $$
        select case when elt.event_id_is_uuid(event_id) then '' else event_id end
    $$;

create function elt.event_id(event_id_uuid uuid, event_id_text text) returns text
    language sql immutable strict parallel safe
    as $$
        select case when event_id_text = '' then event_id_uuid::text else event_id_text end
    $$;

-- Views cannot outlive a change of the column they read. The views campaign-elt built from
-- views/ are dropped and forgotten, so that the next refresh builds them again from their
-- files; anything else that reads elt.events.event_id stops the migration with a message.
do $$
declare
    dependent record;
begin
    for dependent in
        select distinct
            view_class.oid::regclass as view_name,
            format('%s.%s', view_namespace.nspname, view_class.relname) as relation_name,
            managed.relation_name is not null as is_managed
        from pg_catalog.pg_depend as dependency
        inner join pg_catalog.pg_rewrite as rewrite on rewrite.oid = dependency.objid
        inner join pg_catalog.pg_class as view_class on view_class.oid = rewrite.ev_class
        inner join pg_catalog.pg_namespace as view_namespace
            on view_namespace.oid = view_class.relnamespace
        left join elt.managed_relations as managed
            on managed.relation_name = format('%s.%s', view_namespace.nspname, view_class.relname)
        where dependency.classid = 'pg_catalog.pg_rewrite'::regclass
            and dependency.refobjid = 'elt.events'::regclass
            and dependency.refobjsubid = (
                select attnum from pg_catalog.pg_attribute
                where attrelid = 'elt.events'::regclass and attname = 'event_id'
            )
    loop
        if not dependent.is_managed then
            raise exception 'the view % reads elt.events.event_id, which this migration '
                'changes: drop it, run campaign-elt again, and create it again reading '
                'staging.stg_events (or elt.event_id(event_id_uuid, event_id_text))',
                dependent.view_name;
        end if;
        execute format('drop view %s', dependent.view_name);
        delete from elt.managed_relations where relation_name = dependent.relation_name;
    end loop;
end $$;

-- The table is built again, its columns in an order that wastes no alignment padding (the
-- 8-byte columns first, then the uuid, then the texts): 8 bytes less per row than the old
-- order with the new columns. Owner and grants move over; the indexes are built again once the
-- rows are in, unless the primary key was missing: then a bulk first load is unfinished (its
-- duplicates are still in the table), and finishing it builds the key and the indexes.
create table elt.events_by_uuid (
    customer_id bigint not null,
    user_id bigint not null,
    fired_at timestamptz not null,
    load_id bigint not null,
    line_number bigint not null,
    event_id_uuid uuid not null,
    event_type text collate "C" not null,
    event_id_text text collate "C" not null,
    ip_hash bytea,
    email_hash bytea,
    -- The split is what makes the key right: an id stored both ways would be two events.
    constraint events_event_id_stored_once check (
        event_id_text = ''
        or (event_id_uuid = '00000000-0000-0000-0000-000000000000'
            and not elt.event_id_is_uuid(event_id_text))
    )
);

insert into elt.events_by_uuid (customer_id, user_id, fired_at, load_id, line_number,
    event_id_uuid, event_type, event_id_text, ip_hash, email_hash)
select customer_id, user_id, fired_at, load_id, line_number,
    elt.event_id_uuid(event_id), event_type, elt.event_id_text(event_id), ip_hash, email_hash
from elt.events
order by load_id, line_number;

do $$
declare
    old_table record;
    privilege record;
begin
    select
        exists (select 1 from pg_catalog.pg_constraint
                where conrelid = 'elt.events'::regclass and contype = 'p') as had_primary_key,
        pg_catalog.pg_get_userbyid(relowner) as owner_name,
        relacl
    into old_table
    from pg_catalog.pg_class
    where oid = 'elt.events'::regclass;

    execute format('alter table elt.events_by_uuid owner to %I', old_table.owner_name);
    for privilege in
        select
            case when acl.grantee = 0 then 'public'
                 else quote_ident(pg_catalog.pg_get_userbyid(acl.grantee)) end as grantee,
            acl.privilege_type,
            acl.is_grantable
        from pg_catalog.aclexplode(old_table.relacl) as acl
    loop
        execute format('grant %s on table elt.events_by_uuid to %s%s', privilege.privilege_type,
            privilege.grantee, case when privilege.is_grantable then ' with grant option' else '' end);
    end loop;

    drop table elt.events;
    alter table elt.events_by_uuid rename to events;
    if old_table.had_primary_key then
        alter table elt.events
            add constraint events_pkey primary key (event_id_uuid, event_type, event_id_text);
        create index events_customer_id_fired_at_user_id
            on elt.events (customer_id, fired_at, user_id);
        create index events_load_id on elt.events using brin (load_id);
    end if;
end $$;

analyze elt.events;

alter table elt.staged_lines
    drop column event_id,
    add column event_id_uuid uuid,
    add column event_id_text text collate "C";
