-- The keys of a bulk first load that may repeat an earlier row of the same load.
--
-- A bulk load copies its rows into elt.events without the primary key (see src/load/bulk.rs).
-- The loader keeps a Bloom filter of the keys it has sent: a key the filter has not seen is
-- certainly new; a key it may have seen (a re-send, or one of the filter's false positives) is
-- written here too, in the batch's transaction. When the load finishes, later occurrences are
-- looked for only among the events with these keys — a hash join against this small table —
-- instead of numbering every row of the table, and the table is emptied.
--
-- The rows are an optimisation only: the finish still builds the unique key, and if that fails
-- (a load from before this table, or rows deleted by hand) it removes later occurrences across
-- the whole table as before.
create table elt.bulk_load_suspect_keys (
    event_id_uuid uuid not null,
    event_type text not null,
    -- as in elt.events, so the finish joins on the same collation
    event_id_text text collate "C" not null
);
