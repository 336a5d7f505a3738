-- Patent domain, written by connectors/patent. ReplacingMergeTree on version
-- (observed_at in microseconds); no PARTITION BY (see 0002_tax.sql).

-- Patent applications as last observed (patent.bibliographic). Keyed by the
-- application number alone: a grant re-sent for the same application_no
-- with a newer observed_at replaces the pending row, whatever record_id the
-- provider gave it. applicant_names and applicant_usccs are parallel arrays
-- ('' for an applicant without a USCC); ipc holds canonical symbols
-- (H01M 10/42), the main classification first.
CREATE TABLE IF NOT EXISTS patents (
    application_no String,
    kind Enum8('invention' = 1, 'utility_model' = 2, 'design' = 3),
    pct UInt8,
    title String,
    applicant_names Array(String),
    applicant_usccs Array(String),
    ipc Array(String),
    ipc_subclasses Array(String),
    filing_date Date,
    publication_date Nullable(Date),
    grant_date Nullable(Date),
    status Enum8('pending' = 1, 'granted' = 2, 'rejected' = 3, 'withdrawn' = 4, 'lapsed' = 5, 'invalidated' = 6),
    record_id String,
    source String,
    schema_version UInt16,
    observed_at DateTime,
    ingested_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY application_no;

-- A firm's patent applications, by USCC: one row per applicant with a USCC.
-- An applicant dropped by a later correction keeps its old row; readers
-- join patents (newest version) and check applicant_usccs.
CREATE TABLE IF NOT EXISTS patent_applicants (
    uscc String,
    application_no String,
    applicant_name String,
    position UInt8,
    record_id String,
    source String,
    schema_version UInt16,
    observed_at DateTime,
    ingested_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (uscc, application_no);

-- Legal status events (patent.legal_event). uscc is the firm the provider
-- keyed the record to ('' when none); parties carry a USCC when one was given.
CREATE TABLE IF NOT EXISTS patent_legal_events (
    application_no String,
    event_date Date,
    event_code Enum8('GRANT' = 1, 'LAPSE' = 2, 'INVALID' = 3, 'RESTORE' = 4, 'TRANSFER' = 5, 'PLEDGE' = 6, 'PLEDGE_RELEASE' = 7),
    event_text String,
    from_party_name String,
    from_party_uscc String,
    to_party_name String,
    to_party_uscc String,
    uscc String,
    record_id String,
    source String,
    schema_version UInt16,
    observed_at DateTime,
    ingested_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (application_no, record_id);
