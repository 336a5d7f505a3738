-- Profile reads, laid out for them (schema/profiles*.go). A profile needs
-- about a hundred rows of one firm spread over a dozen tables sorted for
-- ingest, in granules of 8,192 rows: reading them cost about 400,000 rows
-- and 60 MB per profile. These tables hold the same records, copied as
-- they are inserted by materialized views, sorted by firm (or by
-- application) in granules of 256 rows, with each record already in the
-- shape the profile reader scans (schema/profiles.go, record).
--
-- They are copies, not aggregates: every version of every record is kept
-- (ReplacingMergeTree on version, keyed like its source table), and reads
-- still take argMax(..., version) per record and apply a consent's
-- data_from floor to the newest version, so corrections and floors stay
-- exact. The field expressions repeat the branches of profiles_tax.go,
-- profiles_ops.go and profiles_patent.go; change both together, in a new
-- migration (TestProfileRecords_MatchSources compares them).
--
-- The views copy every insert from their creation on; the INSERT ... SELECT
-- statements copy what was stored before. A row both copied and caught by
-- a view is stored twice with the same version, which reads and merges
-- treat as one. Migrate with ingest stopped: a row whose insert began
-- before its view existed and ended after the copy began would be missed.

-- Identities (kind 'firm', fields [name]), tax and operations records, by firm.
CREATE TABLE IF NOT EXISTS profile_records (
    uscc String,
    rkind String,
    rkey String,
    data_date Date,
    fields Array(String),
    source String,
    observed_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (uscc, rkind, rkey)
SETTINGS index_granularity = 256;

-- Patent applications and legal events, by application.
CREATE TABLE IF NOT EXISTS patent_records (
    application_no String,
    rkind String,
    rkey String,
    data_date Date,
    fields Array(String),
    lists Array(Array(String)),
    source String,
    observed_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (application_no, rkind, rkey)
SETTINGS index_granularity = 256;

-- Which applications name a firm, from any version of any row: link 1, an
-- applicant (patent_applicants); 2, a party to a transfer; 3, the firm an
-- event is keyed to or another party to an event. Rows are never replaced,
-- as the "any version" readers of the source tables expect.
CREATE TABLE IF NOT EXISTS patent_links (
    firm String,
    application_no String,
    link UInt8
) ENGINE = ReplacingMergeTree
ORDER BY (firm, application_no, link)
SETTINGS index_granularity = 256;

CREATE MATERIALIZED VIEW IF NOT EXISTS profile_records_firms TO profile_records AS
SELECT uscc, 'firm' AS rkind, '' AS rkey, toDate(observed_at) AS data_date, [name] AS fields, source, observed_at, version
FROM firms;

CREATE MATERIALIZED VIEW IF NOT EXISTS profile_records_vat TO profile_records AS
SELECT uscc, 'tax.vat_return' AS rkind, record_id AS rkey, period_start AS data_date,
    [toString(period_end), toString(period_kind), toString(filed_on), toString(late), toString(sales), toString(output_tax), toString(input_tax), toString(tax_payable)] AS fields,
    source, observed_at, version
FROM tax_vat_returns;

CREATE MATERIALIZED VIEW IF NOT EXISTS profile_records_cit TO profile_records AS
SELECT uscc, 'tax.cit_annual' AS rkind, record_id AS rkey, toDate(concat(toString(tax_year), '-01-01')) AS data_date,
    [toString(tax_year), toString(operating_revenue), toString(total_profit), toString(tax_payable), toString(filed_on), toString(late)] AS fields,
    source, observed_at, version
FROM tax_cit_annual;

CREATE MATERIALIZED VIEW IF NOT EXISTS profile_records_rating TO profile_records AS
SELECT uscc, 'tax.credit_rating' AS rkind, record_id AS rkey, toDate(concat(toString(rating_year), '-01-01')) AS data_date,
    [toString(rating_year), toString(rating)] AS fields,
    source, observed_at, version
FROM tax_credit_ratings;

CREATE MATERIALIZED VIEW IF NOT EXISTS profile_records_arrears TO profile_records AS
SELECT uscc, 'tax.arrears' AS rkind, record_id AS rkey, as_of AS data_date,
    [toString(tax_type), toString(tax_type_name), toString(amount_owed)] AS fields,
    source, observed_at, version
FROM tax_arrears;

CREATE MATERIALIZED VIEW IF NOT EXISTS profile_records_electricity TO profile_records AS
SELECT uscc, 'ops.electricity' AS rkind, record_id AS rkey, month AS data_date,
    [account_no, toString(consumption_kwh), ifNull(toString(peak_kw), ''), ifNull(toString(arrears), '')] AS fields,
    source, observed_at, version
FROM ops_electricity;

CREATE MATERIALIZED VIEW IF NOT EXISTS profile_records_water TO profile_records AS
SELECT uscc, 'ops.water' AS rkind, record_id AS rkey, period_start AS data_date,
    [toString(period_end), toString(period_kind), toString(volume_m3)] AS fields,
    source, observed_at, version
FROM ops_water;

CREATE MATERIALIZED VIEW IF NOT EXISTS profile_records_social TO profile_records AS
SELECT uscc, 'ops.social_insurance' AS rkind, record_id AS rkey, period_start AS data_date,
    [toString(period_end), toString(period_kind), toString(insured_headcount), ifNull(toString(payroll_base_total), '')] AS fields,
    source, observed_at, version
FROM ops_social_insurance;

CREATE MATERIALIZED VIEW IF NOT EXISTS profile_records_customs TO profile_records AS
SELECT uscc, 'ops.customs' AS rkind, record_id AS rkey, month AS data_date,
    [toString(direction), toString(amount), currency] AS fields,
    source, observed_at, version
FROM ops_customs;

CREATE MATERIALIZED VIEW IF NOT EXISTS patent_records_patents TO patent_records AS
SELECT application_no, 'patent.bibliographic' AS rkind, application_no AS rkey, filing_date AS data_date,
    [toString(kind), toString(pct), toString(title), ifNull(toString(publication_date), ''), ifNull(toString(grant_date), ''), toString(status)] AS fields,
    [applicant_names, applicant_usccs, ipc, ipc_subclasses] AS lists,
    source, observed_at, version
FROM patents;

CREATE MATERIALIZED VIEW IF NOT EXISTS patent_records_events TO patent_records AS
SELECT application_no, 'patent.legal_event' AS rkind, record_id AS rkey, event_date AS data_date,
    [application_no, toString(event_code), event_text, from_party_name, from_party_uscc, to_party_name, to_party_uscc, uscc] AS fields,
    [emptyArrayString()] AS lists,
    source, observed_at, version
FROM patent_legal_events;

CREATE MATERIALIZED VIEW IF NOT EXISTS patent_links_applicants TO patent_links AS
SELECT uscc AS firm, application_no, 1 AS link
FROM patent_applicants;

CREATE MATERIALIZED VIEW IF NOT EXISTS patent_links_events TO patent_links AS
SELECT party AS firm, application_no, link_kind AS link
FROM patent_legal_events
ARRAY JOIN [uscc, from_party_uscc, to_party_uscc] AS party, [3, if(event_code = 'TRANSFER', 2, 3), if(event_code = 'TRANSFER', 2, 3)] AS link_kind
WHERE party != '';

-- What was stored before the views existed.
INSERT INTO profile_records (uscc, rkind, rkey, data_date, fields, source, observed_at, version)
SELECT uscc, 'firm' AS rkind, '' AS rkey, toDate(observed_at) AS data_date, [name] AS fields, source, observed_at, version
FROM firms;

INSERT INTO profile_records (uscc, rkind, rkey, data_date, fields, source, observed_at, version)
SELECT uscc, 'tax.vat_return' AS rkind, record_id AS rkey, period_start AS data_date,
    [toString(period_end), toString(period_kind), toString(filed_on), toString(late), toString(sales), toString(output_tax), toString(input_tax), toString(tax_payable)] AS fields,
    source, observed_at, version
FROM tax_vat_returns;

INSERT INTO profile_records (uscc, rkind, rkey, data_date, fields, source, observed_at, version)
SELECT uscc, 'tax.cit_annual' AS rkind, record_id AS rkey, toDate(concat(toString(tax_year), '-01-01')) AS data_date,
    [toString(tax_year), toString(operating_revenue), toString(total_profit), toString(tax_payable), toString(filed_on), toString(late)] AS fields,
    source, observed_at, version
FROM tax_cit_annual;

INSERT INTO profile_records (uscc, rkind, rkey, data_date, fields, source, observed_at, version)
SELECT uscc, 'tax.credit_rating' AS rkind, record_id AS rkey, toDate(concat(toString(rating_year), '-01-01')) AS data_date,
    [toString(rating_year), toString(rating)] AS fields,
    source, observed_at, version
FROM tax_credit_ratings;

INSERT INTO profile_records (uscc, rkind, rkey, data_date, fields, source, observed_at, version)
SELECT uscc, 'tax.arrears' AS rkind, record_id AS rkey, as_of AS data_date,
    [toString(tax_type), toString(tax_type_name), toString(amount_owed)] AS fields,
    source, observed_at, version
FROM tax_arrears;

INSERT INTO profile_records (uscc, rkind, rkey, data_date, fields, source, observed_at, version)
SELECT uscc, 'ops.electricity' AS rkind, record_id AS rkey, month AS data_date,
    [account_no, toString(consumption_kwh), ifNull(toString(peak_kw), ''), ifNull(toString(arrears), '')] AS fields,
    source, observed_at, version
FROM ops_electricity;

INSERT INTO profile_records (uscc, rkind, rkey, data_date, fields, source, observed_at, version)
SELECT uscc, 'ops.water' AS rkind, record_id AS rkey, period_start AS data_date,
    [toString(period_end), toString(period_kind), toString(volume_m3)] AS fields,
    source, observed_at, version
FROM ops_water;

INSERT INTO profile_records (uscc, rkind, rkey, data_date, fields, source, observed_at, version)
SELECT uscc, 'ops.social_insurance' AS rkind, record_id AS rkey, period_start AS data_date,
    [toString(period_end), toString(period_kind), toString(insured_headcount), ifNull(toString(payroll_base_total), '')] AS fields,
    source, observed_at, version
FROM ops_social_insurance;

INSERT INTO profile_records (uscc, rkind, rkey, data_date, fields, source, observed_at, version)
SELECT uscc, 'ops.customs' AS rkind, record_id AS rkey, month AS data_date,
    [toString(direction), toString(amount), currency] AS fields,
    source, observed_at, version
FROM ops_customs;

INSERT INTO patent_records (application_no, rkind, rkey, data_date, fields, lists, source, observed_at, version)
SELECT application_no, 'patent.bibliographic' AS rkind, application_no AS rkey, filing_date AS data_date,
    [toString(kind), toString(pct), toString(title), ifNull(toString(publication_date), ''), ifNull(toString(grant_date), ''), toString(status)] AS fields,
    [applicant_names, applicant_usccs, ipc, ipc_subclasses] AS lists,
    source, observed_at, version
FROM patents;

INSERT INTO patent_records (application_no, rkind, rkey, data_date, fields, lists, source, observed_at, version)
SELECT application_no, 'patent.legal_event' AS rkind, record_id AS rkey, event_date AS data_date,
    [application_no, toString(event_code), event_text, from_party_name, from_party_uscc, to_party_name, to_party_uscc, uscc] AS fields,
    [emptyArrayString()] AS lists,
    source, observed_at, version
FROM patent_legal_events;

INSERT INTO patent_links (firm, application_no, link)
SELECT uscc AS firm, application_no, 1 AS link
FROM patent_applicants;

INSERT INTO patent_links (firm, application_no, link)
SELECT party AS firm, application_no, link_kind AS link
FROM patent_legal_events
ARRAY JOIN [uscc, from_party_uscc, to_party_uscc] AS party, [3, if(event_code = 'TRANSFER', 2, 3), if(event_code = 'TRANSFER', 2, 3)] AS link_kind
WHERE party != '';
