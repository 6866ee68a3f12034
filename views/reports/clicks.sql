-- materialized: incremental
-- grain: one row per customer and UTC hour with at least one ReferralRecommendClick
-- sources: intermediate.int_customer_hourly
-- owner: analytics
-- contract: columns customer_id bigint, hour timestamptz, clicks bigint (README, "The reports"); do not rename.

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
        clicks
    from customer_hourly
    where clicks > 0
)

select * from final
