-- What a consent carries besides its terms: who asked for it (a consent
-- request), the bank's note, the firm's reason for rejecting or revoking.
-- One row per consent version, joined to consents on (id, version): a row
-- whose consent version never got stored matches nothing. A table of its
-- own because ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS, and
-- migrations must be safe to re-run.
CREATE TABLE IF NOT EXISTS consent_details (
    id String,
    uscc String,
    grantee String,
    version UInt64,
    requested_by String,
    note String,
    reason String
) ENGINE = ReplacingMergeTree
ORDER BY (uscc, id, version);

-- Consent receipts, and the outbox of consent.events.v1. receipt_id is
-- '<consent id>:<event>', so two API instances that expire the same consent
-- write the same row (the receipt bytes are identical too) and FINAL keeps
-- one. state: written unpublished before the consent change, published once
-- its event is on Kafka, void when the consent change never got stored.
-- version: published rows carry the top bit, so nothing replaces them.
-- No partitions: a receipt's rows must meet in one part for FINAL.
CREATE TABLE IF NOT EXISTS consent_receipts (
    receipt_id String,
    consent_id String,
    uscc String,
    grantee String,
    event Enum8('requested' = 1, 'granted' = 2, 'approved' = 3, 'rejected' = 4, 'revoked' = 5, 'expired' = 6),
    seq UInt32,
    issued_at DateTime,
    jws String,
    hash String,
    prev String,
    consent_version UInt64,
    state Enum8('unpublished' = 1, 'published' = 2, 'void' = 3),
    written_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (consent_id, receipt_id);
