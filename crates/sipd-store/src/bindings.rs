//! Registration bindings, shared by every sipd node through the database.

use crate::sql::{get, is_foreign_key_violation};
use crate::{Binding, Result, Store, StoreError};
use sqlx::any::AnyRow;

fn binding_from_row(row: &AnyRow) -> Result<Binding> {
    Ok(Binding {
        endpoint_pk: get(row, "endpoint_pk")?,
        contact_uri: get(row, "contact_uri")?,
        expires_at_ms: get(row, "expires_at")?,
        q: get(row, "q")?,
        call_id: get(row, "call_id")?,
        cseq: get(row, "cseq")?,
        user_agent: get(row, "user_agent")?,
        received: get(row, "received")?,
        transport: get(row, "transport")?,
        flow_id: get(row, "flow_id")?,
        instance_id: get(row, "instance_id")?,
        reg_id: get(row, "reg_id")?,
        path: get(row, "path")?,
        node_id: get(row, "node_id")?,
        updated_at_ms: get(row, "updated_at")?,
    })
}

impl Store {
    /// Insert or replace the binding (unique per endpoint + contact URI).
    ///
    /// Fails with `InvalidReference("endpoint")` when the endpoint does not exist (e.g. it was
    /// deleted while the REGISTER was being processed).
    pub async fn upsert_binding(&self, binding: &Binding) -> Result<()> {
        let upserted = sqlx::query(
            "INSERT INTO registrations (endpoint_pk, contact_uri, expires_at, q, call_id, cseq, \
             user_agent, received, transport, flow_id, instance_id, reg_id, path, node_id, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (endpoint_pk, contact_uri) DO UPDATE SET expires_at = excluded.expires_at, \
             q = excluded.q, call_id = excluded.call_id, cseq = excluded.cseq, \
             user_agent = excluded.user_agent, received = excluded.received, \
             transport = excluded.transport, flow_id = excluded.flow_id, \
             instance_id = excluded.instance_id, reg_id = excluded.reg_id, path = excluded.path, \
             node_id = excluded.node_id, updated_at = excluded.updated_at",
        )
        .bind(binding.endpoint_pk)
        .bind(&binding.contact_uri)
        .bind(binding.expires_at_ms)
        .bind(binding.q)
        .bind(&binding.call_id)
        .bind(binding.cseq)
        .bind(binding.user_agent.as_deref())
        .bind(&binding.received)
        .bind(&binding.transport)
        .bind(binding.flow_id.as_deref())
        .bind(binding.instance_id.as_deref())
        .bind(binding.reg_id)
        .bind(binding.path.as_deref())
        .bind(&binding.node_id)
        .bind(binding.updated_at_ms)
        .execute(&self.pool)
        .await;
        match upserted {
            Ok(_) => Ok(()),
            Err(err) if is_foreign_key_violation(&err) => {
                Err(StoreError::InvalidReference("endpoint"))
            }
            Err(err) => Err(err.into()),
        }
    }

    pub async fn delete_binding(&self, endpoint_pk: i64, contact_uri: &str) -> Result<()> {
        sqlx::query("DELETE FROM registrations WHERE endpoint_pk = $1 AND contact_uri = $2")
            .bind(endpoint_pk)
            .bind(contact_uri)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// All bindings that have not expired at `now_ms`, e.g. to reload at start; grouped by
    /// endpoint, newest first within each.
    pub async fn live_bindings(&self, now_ms: i64) -> Result<Vec<Binding>> {
        let rows = sqlx::query(
            "SELECT endpoint_pk, contact_uri, expires_at, q, call_id, cseq, user_agent, received, \
             transport, flow_id, instance_id, reg_id, path, node_id, updated_at \
             FROM registrations WHERE expires_at > $1 \
             ORDER BY endpoint_pk, updated_at DESC, id DESC",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(binding_from_row).collect()
    }
}
