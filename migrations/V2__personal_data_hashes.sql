-- Keyed hashes of the personal fields ip and email, filled only when the operator gives a key
-- (CAMPAIGN_ELT_PII_HASH_KEY or --pii-hash-key-file): analysts can count distinct values
-- without the values being stored. Without a key both stay NULL; clear values are never stored.
alter table elt.events
    add column ip_hash bytea,
    add column email_hash bytea;

alter table elt.staged_lines
    add column ip_hash bytea,
    add column email_hash bytea;
