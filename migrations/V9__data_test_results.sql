-- What each data test found the last time it ran after a refresh, so that the next run can test
-- only what changed since: a test whose header says `-- scope: per key`, whose text is unchanged
-- and which passed, reads only the rows of the (customer, hour) keys the refreshes after
-- `refresh_id` recomputed (elt.refresh_keys), unless one of those refreshes rebuilt a relation
-- or was a full refresh (see docs/design.md, "Data tests").
create table elt.data_test_results (
    test_name text primary key,
    -- The test file's checksum when it ran (blake3 of its text, as for the models).
    checksum text not null,
    passed boolean not null,
    -- The newest refresh the result covers: every row of the reports as that refresh left them.
    refresh_id bigint not null references elt.refreshes (refresh_id),
    -- NULL when the test read every row; else the number of keys it read.
    tested_keys bigint,
    checked_at timestamptz not null default clock_timestamp()
);
