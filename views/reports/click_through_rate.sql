-- materialized: incremental
-- grain: one row per customer and UTC hour with at least one page load or click
-- sources: intermediate.int_customer_hourly
-- owner: analytics
-- contract: columns customer_id bigint, hour timestamptz, page_loads bigint, related_clicks bigint,
-- click_through_rate numeric (README, "The reports"); do not rename.
--
-- click_through_rate = related_clicks / page_loads, unrounded; NULL when the hour had no page
-- loads. A click counts in its own hour while its page load may be in the previous one, so the
-- rate can exceed 1: that is expected, not a bug.

with customer_hourly as (
    select int_customer_hourly.*
    from intermediate.int_customer_hourly
    inner join stale_ranges
        on int_customer_hourly.customer_id = stale_ranges.customer_id
        and int_customer_hourly.hour >= stale_ranges.starts_at
        and int_customer_hourly.hour < stale_ranges.ends_at
),

final as (
    select
        customer_id,
        hour,
        page_loads,
        related_clicks,
        related_clicks::numeric / nullif(page_loads, 0) as click_through_rate
    from customer_hourly
    where page_loads > 0 or clicks > 0
)

select * from final
