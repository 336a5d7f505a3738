-- The sealed audit log. Each partition of audit.access.v1 is one hash chain
-- (chain = partition): seq counts its events densely from 1, hash =
-- SHA-256(previous hash || canonical), and canonical holds the exact bytes
-- that were hashed (auditchain.go), so verification never depends on how a
-- column type rounds a value. The other columns repeat the event for
-- queries; the verifier checks them against canonical.
--
-- Ordering: regulators ask "what did institution X access between T1 and
-- T2", so the sorting key starts with org and occurred_at and such a query
-- reads only the granules of that institution and period; monthly
-- partitions keep years of events in parts that can be dropped or moved by
-- month. chain and seq end the key: re-sealing after a crash writes the
-- same (org, occurred_at, chain, seq) again and ReplacingMergeTree keeps
-- one row, and readers that must be exact use FINAL. Queries by firm use
-- audit_events_by_firm below; verification reads by (chain, seq), which
-- this key does not serve, but it is a sequential scan either way.
CREATE TABLE IF NOT EXISTS audit_events (
    chain UInt32,
    seq UInt64,
    hash String,
    canonical String,
    source_offset UInt64,
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
ORDER BY (org, occurred_at, chain, seq);

-- The same events sorted for "who read firm F's data between T1 and T2",
-- asked by the firm itself and by regulators. ClickHouse 18.16 has no
-- projections or usable skipping indexes, so a second sorting is a second
-- table, filled by the materialized view on every insert into
-- audit_events. It is a query copy without the canonical bytes: what is
-- verified is audit_events.
CREATE TABLE IF NOT EXISTS audit_events_by_firm (
    chain UInt32,
    seq UInt64,
    hash String,
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
ORDER BY (uscc, occurred_at, chain, seq);

CREATE MATERIALIZED VIEW IF NOT EXISTS audit_events_by_firm_mv TO audit_events_by_firm AS
SELECT chain, seq, hash, event_id, request_id, occurred_at, subject, role, org, uscc, scopes, purpose,
       consent_id, decision, reason, status, client_addr, method, path
FROM audit_events;

-- The sealer's checkpoint, written after the events of each batch: where
-- each chain stands and which Kafka offset to read next. A restart resumes
-- from here, not from committed consumer offsets. Reads take the row with
-- the highest next_offset (argMax), which only grows.
CREATE TABLE IF NOT EXISTS audit_chain_state (
    chain UInt32,
    last_seq UInt64,
    last_hash String,
    next_offset UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(next_offset)
ORDER BY chain;

-- Signed digests: digest number of a chain adds seqs first_seq..last_seq
-- (empty when nothing was sealed in the interval: first_seq = last_seq + 1)
-- and carries the previous digest's signature. signature is Ed25519 over
-- the canonical encoding in auditchain.go (AuditDigest.SigningBytes), in
-- standard base64, as is prev_signature; last_hash is hex. A digest is
-- written once and never changed, so (chain, number) is its key.
CREATE TABLE IF NOT EXISTS audit_digests (
    chain UInt32,
    number UInt64,
    first_seq UInt64,
    last_seq UInt64,
    last_hash String,
    prev_signature String,
    signed_at DateTime,
    key_id String,
    signature String
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(signed_at)
ORDER BY (chain, number);
