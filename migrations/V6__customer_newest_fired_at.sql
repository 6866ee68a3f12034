-- An upper bound of the newest fired_at among each customer's events, kept by every merge batch
-- (after it has queued its stale keys) and read by the stale-keys queries in views/.
--
-- A page load that fired after everything its customer had loaded before the batch cannot
-- relate to a click loaded earlier: every such click fired at or before this bound, and the
-- clicks of the batch itself are queued as their own keys. So the queries look up the page
-- loads at or before the bound only, which for logs in time order are the late ones, instead
-- of every page load of the night. The bound only has to be high enough: an unload leaves it
-- as it was, and a customer without a row (events from a bulk first load, or from before this
-- migration) has no bound, so all of its page loads are looked up.
create table elt.customer_newest_fired_at (
    customer_id bigint primary key,
    newest_fired_at timestamptz not null
);
