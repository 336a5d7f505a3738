-- Firms as last seen in any source: the newest observation of a USCC wins.
CREATE TABLE IF NOT EXISTS firms (
    uscc String,
    name String,
    record_id String,
    source String,
    schema_version UInt16,
    observed_at DateTime,
    ingested_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY uscc;

-- Consents: every state change inserts the whole consent again with a higher
-- version; reads take the newest version of each id (argMax), so a revocation
-- is visible to the very next request.
CREATE TABLE IF NOT EXISTS consents (
    id String,
    uscc String,
    grantee String,
    scopes Array(String),
    purpose String,
    status Enum8('PENDING' = 1, 'ACTIVE' = 2, 'REVOKED' = 3, 'EXPIRED' = 4, 'REJECTED' = 5),
    valid_from DateTime,
    expires_at DateTime,
    data_from Nullable(Date),
    created_at DateTime,
    updated_at DateTime,
    updated_by String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (uscc, id);

-- Access events, one per request that touched firm data or consents, written
-- by the ingest worker that consumes audit.access.v1. event_id makes a
-- redelivered event replace itself.
CREATE TABLE IF NOT EXISTS access_events (
    event_id String,
    request_id String,
    occurred_at DateTime,
    subject String,
    role String,
    org String,
    uscc String,
    scopes Array(String),
    purpose String,
    consent_id String,
    decision Enum8('allow' = 1, 'deny' = 2),
    reason String,
    status UInt16,
    client_addr String,
    method String,
    path String
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (org, uscc, occurred_at, event_id);
