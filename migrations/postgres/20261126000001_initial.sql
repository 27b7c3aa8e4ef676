-- sipd schema (PostgreSQL). Times are BIGINT Unix milliseconds (UTC); the SQLite schema in
-- ../sqlite mirrors this one column for column.

CREATE TABLE accounts (
    id                    BIGSERIAL PRIMARY KEY,
    auth_id               TEXT NOT NULL CONSTRAINT accounts_auth_id_key UNIQUE,
    -- Sub-accounts are one level deep (checked by the store); RESTRICT so that deleting a main
    -- account never silently removes its children.
    parent_id             BIGINT REFERENCES accounts (id) ON DELETE RESTRICT,
    name                  TEXT NOT NULL,
    email                 TEXT,
    phone                 TEXT,
    description           TEXT,
    rate_limit            BIGINT NOT NULL DEFAULT 1000,
    -- JSON object of booleans, e.g. {"calls":true,"cdr":true}.
    permissions           TEXT NOT NULL DEFAULT '{}',
    enabled               BOOLEAN NOT NULL DEFAULT TRUE,
    kyc_mode              TEXT NOT NULL DEFAULT 'personal_use',
    business_type         TEXT,
    -- Auth token, ChaCha20-Poly1305 encrypted with the server key (12-byte random nonce per row,
    -- auth_id as associated data), plus an HMAC-SHA256 of the token for constant-time checks.
    auth_token_nonce      BYTEA NOT NULL,
    auth_token_ciphertext BYTEA NOT NULL,
    auth_token_hmac       BYTEA NOT NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    last_used             BIGINT
);
CREATE INDEX accounts_parent_created_idx ON accounts (parent_id, created_at DESC, id DESC);

CREATE TABLE applications (
    id                   BIGSERIAL PRIMARY KEY,
    app_id               TEXT NOT NULL CONSTRAINT applications_app_id_key UNIQUE,
    account_id           BIGINT NOT NULL REFERENCES accounts (id) ON DELETE RESTRICT,
    app_name             TEXT NOT NULL,
    answer_url           TEXT NOT NULL,
    answer_method        TEXT NOT NULL,
    hangup_url           TEXT,
    hangup_method        TEXT NOT NULL,
    fallback_answer_url  TEXT,
    fallback_method      TEXT NOT NULL,
    message_url          TEXT,
    message_method       TEXT NOT NULL,
    default_number_app   BOOLEAN NOT NULL DEFAULT FALSE,
    default_endpoint_app BOOLEAN NOT NULL DEFAULT FALSE,
    application_type     TEXT NOT NULL,
    default_app          BOOLEAN NOT NULL DEFAULT FALSE,
    enabled              BOOLEAN NOT NULL DEFAULT TRUE,
    log_incoming_message BOOLEAN NOT NULL DEFAULT TRUE,
    public_uri           BOOLEAN NOT NULL DEFAULT FALSE,
    sip_transfer_url     TEXT,
    sip_transfer_method  TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX applications_account_created_idx ON applications (account_id, created_at DESC, id DESC);
CREATE INDEX applications_account_name_idx ON applications (account_id, app_name);
-- At most one default app of each kind per account (the store moves the flag; this is the backstop).
CREATE UNIQUE INDEX applications_one_default_endpoint_app ON applications (account_id) WHERE default_endpoint_app;
CREATE UNIQUE INDEX applications_one_default_number_app ON applications (account_id) WHERE default_number_app;

CREATE TABLE endpoints (
    id                     BIGSERIAL PRIMARY KEY,
    endpoint_id            TEXT NOT NULL CONSTRAINT endpoints_endpoint_id_key UNIQUE,
    account_id             BIGINT NOT NULL REFERENCES accounts (id) ON DELETE RESTRICT,
    -- Unique across the whole SIP domain, stored exactly as given.
    username               TEXT NOT NULL CONSTRAINT endpoints_username_key UNIQUE,
    alias                  TEXT NOT NULL,
    application_id         BIGINT REFERENCES applications (id) ON DELETE SET NULL,
    -- Digest HA1 values (hex); the password itself is never stored.
    ha1_md5                TEXT NOT NULL,
    ha1_sha256             TEXT NOT NULL,
    allow_voice            BOOLEAN NOT NULL,
    allow_message          BOOLEAN NOT NULL,
    allow_video            BOOLEAN NOT NULL,
    allow_same_domain      BOOLEAN NOT NULL,
    allow_other_domains    BOOLEAN NOT NULL,
    allow_phones           BOOLEAN NOT NULL,
    allow_apps             BOOLEAN NOT NULL,
    credentials_changed_at BIGINT NOT NULL,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE INDEX endpoints_account_created_idx ON endpoints (account_id, created_at DESC, id DESC);
CREATE INDEX endpoints_created_idx ON endpoints (created_at DESC, id DESC);
CREATE INDEX endpoints_application_idx ON endpoints (application_id);
-- text_pattern_ops: lets LIKE 'prefix%' use an index whatever the database collation.
CREATE INDEX endpoints_username_pattern_idx ON endpoints (username text_pattern_ops);
CREATE INDEX endpoints_alias_pattern_idx ON endpoints (alias text_pattern_ops);

-- Registration bindings (RFC 3261 §10, RFC 5626 outbound, RFC 3327 Path).
CREATE TABLE registrations (
    id          BIGSERIAL PRIMARY KEY,
    endpoint_pk BIGINT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    contact_uri TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    -- q-value in thousandths.
    q           INTEGER,
    call_id     TEXT NOT NULL,
    cseq        BIGINT NOT NULL,
    user_agent  TEXT,
    received    TEXT NOT NULL,
    transport   TEXT NOT NULL,
    flow_id     TEXT,
    instance_id TEXT,
    reg_id      BIGINT,
    path        TEXT,
    node_id     TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT registrations_endpoint_contact_key UNIQUE (endpoint_pk, contact_uri)
);
CREATE INDEX registrations_expires_at_idx ON registrations (expires_at);
CREATE INDEX registrations_endpoint_updated_idx ON registrations (endpoint_pk, updated_at DESC);
