-- OAuth2 clients of institutions (client credentials grant). Every change
-- inserts the whole client again with a higher version; reads use FINAL.
-- secret_hash is an argon2id PHC string: the secret itself is never stored.
CREATE TABLE IF NOT EXISTS clients (
    id String,
    name String,
    role String,
    org String,
    scopes Array(String),
    secret_hash String,
    disabled UInt8,
    created_at DateTime,
    created_by String,
    updated_at DateTime,
    updated_by String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY id;
