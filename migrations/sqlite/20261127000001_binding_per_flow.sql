-- RFC 5626 §6: a device may register several flows (reg-id 1, 2, …) with the same Contact URI,
-- and each is a binding of its own. A binding's row is therefore identified by (endpoint,
-- contact URI, reg-id), a missing reg-id counting as one value of its own (-1: reg-ids are
-- never negative). The store writes ON CONFLICT against this exact expression; keep the two in
-- step (crates/sipd-store/src/bindings.rs, REG_ID_KEY). Mirrors ../postgres.
--
-- SQLite cannot drop the inline UNIQUE (endpoint_pk, contact_uri) constraint of the initial
-- schema, so the table is rebuilt: new table, copy, drop, rename, indexes again. No other table
-- references registrations, so foreign key enforcement needs no pause. The key is now a separate
-- index, so a later change of it needs no rebuild.

CREATE TABLE registrations_rebuilt (
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
    updated_at  INTEGER NOT NULL
);

INSERT INTO registrations_rebuilt (id, endpoint_pk, contact_uri, expires_at, q, call_id, cseq,
    user_agent, received, transport, flow_id, instance_id, reg_id, path, node_id, updated_at)
SELECT id, endpoint_pk, contact_uri, expires_at, q, call_id, cseq,
    user_agent, received, transport, flow_id, instance_id, reg_id, path, node_id, updated_at
FROM registrations;

-- AUTOINCREMENT never reuses an id; the copy only knows the highest id still present, so carry
-- the old table's counter over.
DELETE FROM sqlite_sequence WHERE name = 'registrations_rebuilt';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'registrations_rebuilt', seq FROM sqlite_sequence WHERE name = 'registrations';

DROP TABLE registrations;
ALTER TABLE registrations_rebuilt RENAME TO registrations;

CREATE INDEX registrations_expires_at_idx ON registrations (expires_at);
CREATE INDEX registrations_endpoint_updated_idx ON registrations (endpoint_pk, updated_at DESC);
CREATE UNIQUE INDEX registrations_endpoint_contact_reg_id_key
    ON registrations (endpoint_pk, contact_uri, COALESCE(reg_id, -1));
