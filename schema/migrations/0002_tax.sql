-- Tax domain, written by connectors/tax. Every table is a ReplacingMergeTree
-- on version (the record's observed_at in microseconds), keyed so that a
-- re-sent or corrected record (same record_id) replaces itself. No PARTITION
-- BY: a partition key taken from the record's own values could move a
-- correction into another partition, where it would never replace the old row.
-- Reads that must be exact take argMax(..., version) by record_id or FINAL.

-- VAT returns (tax.vat_return); the columns are fixed, the API reads them.
CREATE TABLE IF NOT EXISTS tax_vat_returns (
    uscc String,
    taxpayer_name String,
    period_start Date,
    period_end Date,
    period_kind Enum8('month' = 1, 'quarter' = 2),
    filed_on Date,
    late UInt8,
    sales Decimal(18, 2),
    output_tax Decimal(18, 2),
    input_tax Decimal(18, 2),
    tax_payable Decimal(18, 2),
    flags Array(String),
    record_id String,
    source String,
    schema_version UInt16,
    observed_at DateTime,
    ingested_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (uscc, record_id);

-- Annual corporate income tax filings (tax.cit_annual), amounts in yuan.
CREATE TABLE IF NOT EXISTS tax_cit_annual (
    uscc String,
    tax_year UInt16,
    operating_revenue Decimal(18, 2),
    total_profit Decimal(18, 2),
    tax_payable Decimal(18, 2),
    filed_on Date,
    late UInt8,
    flags Array(String),
    record_id String,
    source String,
    schema_version UInt16,
    observed_at DateTime,
    ingested_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (uscc, record_id);

-- Tax credit ratings (tax.credit_rating), one per firm and year.
CREATE TABLE IF NOT EXISTS tax_credit_ratings (
    uscc String,
    rating_year UInt16,
    rating Enum8('A' = 1, 'B' = 2, 'M' = 3, 'C' = 4, 'D' = 5),
    record_id String,
    source String,
    schema_version UInt16,
    observed_at DateTime,
    ingested_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (uscc, record_id);

-- Outstanding tax (tax.arrears); tax_type is a canonical code (vat, cit, ..., other).
CREATE TABLE IF NOT EXISTS tax_arrears (
    uscc String,
    as_of Date,
    tax_type String,
    tax_type_name String,
    amount_owed Decimal(18, 2),
    record_id String,
    source String,
    schema_version UInt16,
    observed_at DateTime,
    ingested_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (uscc, record_id);
