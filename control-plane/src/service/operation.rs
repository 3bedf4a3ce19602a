//! Operations: reading the progress of accepted cluster changes.

use super::node::PageRequest;
use super::page::{page_after, page_size, paginate};
use super::{Service, ServiceError};
use crate::auth::{Identity, Role};
use crate::model::{OperationId, OperationRecord};

impl Service {
    /// One operation, if the caller may view its workspace.
    ///
    /// # Errors
    /// `not_found` (also when the caller has no role in the operation's workspace).
    pub async fn operation_get(
        &self,
        caller: &Identity,
        id: OperationId,
    ) -> Result<OperationRecord, ServiceError> {
        let not_found = || ServiceError::NotFound {
            what: format!("operation {id}"),
        };
        let op = self.store.operation_get(id).await?.ok_or_else(not_found)?;
        match self.authorize(caller, &op.workspace, Role::Viewer).await {
            Ok(_) => Ok(op),
            Err(ServiceError::NotFound { .. }) => Err(not_found()),
            Err(other) => Err(other),
        }
    }

    /// A page of a workspace's operations, newest first.
    ///
    /// # Errors
    /// `not_found`, `invalid_field`.
    pub async fn operations_list(
        &self,
        caller: &Identity,
        workspace: &str,
        page: PageRequest,
    ) -> Result<(Vec<OperationRecord>, Option<String>), ServiceError> {
        let ws = self.authorize(caller, workspace, Role::Viewer).await?;
        let size = page_size(&page)?;
        let before = page_after::<OperationId>(&page)?;
        let items = self.store.operations_list(ws.id, before, size + 1).await?;
        Ok(paginate(items, size, |op| op.id.to_string()))
    }
}
