-- sipd schema (SQLite). Mirrors ../postgres column for column; times are INTEGER Unix
-- milliseconds (UTC), booleans 0/1 integers (the sqlx Any driver cannot decode SQLite BOOLEAN).

CREATE TABLE accounts (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    auth_id               TEXT NOT NULL CONSTRAINT accounts_auth_id_key UNIQUE,
    -- Sub-accounts are one level deep (checked by the store); RESTRICT so that deleting a main
    -- account never silently removes its children.
    parent_id             INTEGER REFERENCES accounts (id) ON DELETE RESTRICT,
    name                  TEXT NOT NULL,
    email                 TEXT,
    phone                 TEXT,
    description           TEXT,
    rate_limit            INTEGER NOT NULL DEFAULT 1000,
    -- JSON object of booleans, e.g. {"calls":true,"cdr":true}.
    permissions           TEXT NOT NULL DEFAULT '{}',
    enabled               INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    kyc_mode              TEXT NOT NULL DEFAULT 'personal_use',
    business_type         TEXT,
    -- Auth token, ChaCha20-Poly1305 encrypted with the server key (12-byte random nonce per row,
    -- auth_id as associated data), plus an HMAC-SHA256 of the token for constant-time checks.
    auth_token_nonce      BLOB NOT NULL,
    auth_token_ciphertext BLOB NOT NULL,
    auth_token_hmac       BLOB NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    last_used             INTEGER
);
CREATE INDEX accounts_parent_created_idx ON accounts (parent_id, created_at DESC, id DESC);

CREATE TABLE applications (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id               TEXT NOT NULL CONSTRAINT applications_app_id_key UNIQUE,
    account_id           INTEGER NOT NULL REFERENCES accounts (id) ON DELETE RESTRICT,
    app_name             TEXT NOT NULL,
    answer_url           TEXT NOT NULL,
    answer_method        TEXT NOT NULL,
    hangup_url           TEXT,
    hangup_method        TEXT NOT NULL,
    fallback_answer_url  TEXT,
    fallback_method      TEXT NOT NULL,
    message_url          TEXT,
    message_method       TEXT NOT NULL,
    default_number_app   INTEGER NOT NULL DEFAULT 0 CHECK (default_number_app IN (0, 1)),
    default_endpoint_app INTEGER NOT NULL DEFAULT 0 CHECK (default_endpoint_app IN (0, 1)),
    application_type     TEXT NOT NULL,
    default_app          INTEGER NOT NULL DEFAULT 0 CHECK (default_app IN (0, 1)),
    enabled              INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    log_incoming_message INTEGER NOT NULL DEFAULT 1 CHECK (log_incoming_message IN (0, 1)),
    public_uri           INTEGER NOT NULL DEFAULT 0 CHECK (public_uri IN (0, 1)),
    sip_transfer_url     TEXT,
    sip_transfer_method  TEXT NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX applications_account_created_idx ON applications (account_id, created_at DESC, id DESC);
CREATE INDEX applications_account_name_idx ON applications (account_id, app_name);
-- At most one default app of each kind per account (the store moves the flag; this is the backstop).
CREATE UNIQUE INDEX applications_one_default_endpoint_app ON applications (account_id) WHERE default_endpoint_app = 1;
CREATE UNIQUE INDEX applications_one_default_number_app ON applications (account_id) WHERE default_number_app = 1;

CREATE TABLE endpoints (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id            TEXT NOT NULL CONSTRAINT endpoints_endpoint_id_key UNIQUE,
    account_id             INTEGER NOT NULL REFERENCES accounts (id) ON DELETE RESTRICT,
    -- Unique across the whole SIP domain, stored exactly as given.
    username               TEXT NOT NULL CONSTRAINT endpoints_username_key UNIQUE,
    alias                  TEXT NOT NULL,
    application_id         INTEGER REFERENCES applications (id) ON DELETE SET NULL,
    -- Digest HA1 values (hex); the password itself is never stored.
    ha1_md5                TEXT NOT NULL,
    ha1_sha256             TEXT NOT NULL,
    allow_voice            INTEGER NOT NULL CHECK (allow_voice IN (0, 1)),
    allow_message          INTEGER NOT NULL CHECK (allow_message IN (0, 1)),
    allow_video            INTEGER NOT NULL CHECK (allow_video IN (0, 1)),
    allow_same_domain      INTEGER NOT NULL CHECK (allow_same_domain IN (0, 1)),
    allow_other_domains    INTEGER NOT NULL CHECK (allow_other_domains IN (0, 1)),
    allow_phones           INTEGER NOT NULL CHECK (allow_phones IN (0, 1)),
    allow_apps             INTEGER NOT NULL CHECK (allow_apps IN (0, 1)),
    credentials_changed_at INTEGER NOT NULL,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);
CREATE INDEX endpoints_account_created_idx ON endpoints (account_id, created_at DESC, id DESC);
CREATE INDEX endpoints_created_idx ON endpoints (created_at DESC, id DESC);
CREATE INDEX endpoints_application_idx ON endpoints (application_id);
-- With PRAGMA case_sensitive_like=ON, LIKE 'prefix%' can use these BINARY-collated indexes.
CREATE INDEX endpoints_username_pattern_idx ON endpoints (username);
CREATE INDEX endpoints_alias_pattern_idx ON endpoints (alias);

-- Registration bindings (RFC 3261 §10, RFC 5626 outbound, RFC 3327 Path).
CREATE TABLE registrations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_pk INTEGER NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    contact_uri TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    -- q-value in thousandths.
    q           INTEGER,
    call_id     TEXT NOT NULL,
    cseq        INTEGER NOT NULL,
    user_agent  TEXT,
    received    TEXT NOT NULL,
    transport   TEXT NOT NULL,
    flow_id     TEXT,
    instance_id TEXT,
    reg_id      INTEGER,
    path        TEXT,
    node_id     TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    CONSTRAINT registrations_endpoint_contact_key UNIQUE (endpoint_pk, contact_uri)
);
CREATE INDEX registrations_expires_at_idx ON registrations (expires_at);
CREATE INDEX registrations_endpoint_updated_idx ON registrations (endpoint_pk, updated_at DESC);
