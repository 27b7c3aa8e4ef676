//! The small acknowledgement body shared by updates and deletes.

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::new_api_id;

/// `{"api_id": "…", "message": "changed"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageReply {
    pub api_id: String,
    pub message: &'static str,
}

impl MessageReply {
    pub fn new(message: &'static str) -> Self {
        MessageReply {
            api_id: new_api_id(),
            message,
        }
    }
}
