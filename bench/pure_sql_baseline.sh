#!/usr/bin/env bash
# The pure-SQL way to do campaign-elt's job, as a baseline to beat: psql \copy of the raw JSON lines
# into a jsonb column, then SQL that cleans, deduplicates (first occurrence in line order) and builds
# the four hourly reports with the attribution rule of README.md "The reports" (same event id, else a page load of
# the same customer and user within W seconds).
#
# Usage: pure_sql_baseline.sh FILE DBNAME [W]
#   Drops and re-creates DBNAME; connects with the usual libpq variables (PGHOST, PGUSER, ...).
# Limits: one line that is not valid JSON aborts the whole \copy (use clean input).
set -euo pipefail
file=$1 db=$2 w=${3:-300}
psql -q -v ON_ERROR_STOP=1 -d postgres -c "drop database if exists $db" -c "create database $db"
psql -q -v ON_ERROR_STOP=1 -d "$db" <<SQL
create unlogged table raw_events (line_no bigserial, j jsonb);
\copy raw_events (j) from '$file' with (format csv, quote e'\x01', delimiter e'\x02')

create table events as
select distinct on (event_id, event_type)
    event_id,
    event_type,
    customer_id,
    user_id,
    fired_at
from (
    select
        line_no,
        j->>'event_id' as event_id,
        j->>'event_type' as event_type,
        (j->>'customer_id')::bigint as customer_id,
        (j->>'user_id')::bigint as user_id,
        to_timestamp(j->>'fired_at', 'MM/DD/YYYY, HH24:MI:SS') at time zone 'UTC' as fired_at
    from raw_events
    where j->>'event_type' in ('ReferralPageLoad', 'ReferralRecommendClick', 'FaqClick')
      and coalesce(j->>'event_id', '') <> ''
      and j->>'customer_id' ~ '^[0-9]{1,18}$'
      and j->>'user_id' ~ '^[0-9]{1,18}$'
      and j->>'fired_at' ~ '^(0[1-9]|1[0-2])/(0[1-9]|[12][0-9]|3[01])/[0-9]{4}, ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$'
) as parsed
order by event_id, event_type, line_no;

create table hourly as
select
    customer_id,
    date_trunc('hour', fired_at, 'UTC') as hour,
    count(*) filter (where event_type = 'ReferralPageLoad') as page_loads,
    count(*) filter (where event_type = 'ReferralRecommendClick') as clicks,
    count(distinct user_id) filter (where event_type = 'ReferralRecommendClick') as unique_user_clicks
from events
group by 1, 2;

create table related as
select
    clicks.customer_id,
    date_trunc('hour', clicks.fired_at, 'UTC') as hour,
    count(*) filter (
        where same_id.event_id is not null
           or exists (
               select 1
               from events as window_loads
               where window_loads.event_type = 'ReferralPageLoad'
                 and window_loads.customer_id = clicks.customer_id
                 and window_loads.user_id = clicks.user_id
                 and window_loads.fired_at between clicks.fired_at - interval '$w seconds' and clicks.fired_at
           )
    ) as related_clicks
from events as clicks
left join events as same_id
    on same_id.event_id = clicks.event_id
   and same_id.event_type = 'ReferralPageLoad'
   and same_id.customer_id = clicks.customer_id
   and same_id.user_id = clicks.user_id
   and same_id.fired_at <= clicks.fired_at
where clicks.event_type = 'ReferralRecommendClick'
group by 1, 2;

create schema reports;
create table reports.page_loads as
    select customer_id, hour, page_loads from hourly where page_loads > 0;
create table reports.clicks as
    select customer_id, hour, clicks from hourly where clicks > 0;
create table reports.unique_user_clicks as
    select customer_id, hour, unique_user_clicks from hourly where unique_user_clicks > 0;
create table reports.click_through_rate as
    select
        hourly.customer_id,
        hourly.hour,
        hourly.page_loads,
        coalesce(related.related_clicks, 0) as related_clicks,
        coalesce(related.related_clicks, 0)::numeric / nullif(hourly.page_loads, 0) as click_through_rate
    from hourly
    left join related using (customer_id, hour)
    where hourly.page_loads > 0 or hourly.clicks > 0;
SQL
