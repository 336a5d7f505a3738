-- Operations domain, written by connectors/operations. ReplacingMergeTree on
-- version (observed_at in microseconds), ORDER BY (uscc, record_id) so that a
-- re-sent or corrected record replaces itself; no PARTITION BY (see 0002_tax.sql).

-- Monthly electricity consumption per grid account (ops.electricity), in kWh;
-- peak_kw and arrears (yuan) are NULL when the grid company left them empty.
CREATE TABLE IF NOT EXISTS ops_electricity (
    uscc String,
    account_no String,
    month Date,
    consumption_kwh Decimal(18, 2),
    peak_kw Nullable(Decimal(18, 2)),
    arrears Nullable(Decimal(18, 2)),
    record_id String,
    source String,
    schema_version UInt16,
    observed_at DateTime,
    ingested_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (uscc, record_id);

-- Water consumption per billing period (ops.water), in cubic metres.
CREATE TABLE IF NOT EXISTS ops_water (
    uscc String,
    period_start Date,
    period_end Date,
    period_kind Enum8('month' = 1, 'quarter' = 2),
    volume_m3 Decimal(18, 2),
    record_id String,
    source String,
    schema_version UInt16,
    observed_at DateTime,
    ingested_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (uscc, record_id);

-- Insured headcount per month or quarter (ops.social_insurance);
-- payroll_base_total in yuan, NULL when not given.
CREATE TABLE IF NOT EXISTS ops_social_insurance (
    uscc String,
    period_start Date,
    period_end Date,
    period_kind Enum8('month' = 1, 'quarter' = 2),
    insured_headcount UInt32,
    payroll_base_total Nullable(Decimal(18, 2)),
    record_id String,
    source String,
    schema_version UInt16,
    observed_at DateTime,
    ingested_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (uscc, record_id);

-- Monthly imports and exports (ops.customs), in their own currency (ISO 4217);
-- no exchange rate is applied.
CREATE TABLE IF NOT EXISTS ops_customs (
    uscc String,
    month Date,
    direction Enum8('import' = 1, 'export' = 2),
    amount Decimal(18, 2),
    currency String,
    record_id String,
    source String,
    schema_version UInt16,
    observed_at DateTime,
    ingested_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (uscc, record_id);
