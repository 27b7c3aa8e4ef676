-- RFC 5626 §6: a device may register several flows (reg-id 1, 2, …) with the same Contact URI,
-- and each is a binding of its own. A binding's row is therefore identified by (endpoint,
-- contact URI, reg-id), a missing reg-id counting as one value of its own (-1: reg-ids are
-- never negative). The store writes ON CONFLICT against this exact expression; keep the two in
-- step (crates/sipd-store/src/bindings.rs, REG_ID_KEY). The SQLite schema mirrors it.

-- Built before the old constraint goes: every existing row is unique on (endpoint, contact), so
-- it is unique on this wider key too.
CREATE UNIQUE INDEX registrations_endpoint_contact_reg_id_key
    ON registrations (endpoint_pk, contact_uri, COALESCE(reg_id, -1));
ALTER TABLE registrations DROP CONSTRAINT registrations_endpoint_contact_key;
