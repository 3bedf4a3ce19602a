//! Workspaces: creating them (the creator becomes their admin), reading and listing them.

use super::cluster::check_name;
use super::node::PageRequest;
use super::page::{page_size, paginate};
use super::{ErrorCode, Service, ServiceError};
use crate::auth::{Identity, Role};
use crate::model::WorkspaceRecord;
use crate::store::StoreError;

impl Service {
    /// Creates a workspace.
    ///
    /// # Errors
    /// `invalid_field` or `workspace_exists`.
    pub async fn workspace_create(
        &self,
        caller: &Identity,
        name: &str,
    ) -> Result<WorkspaceRecord, ServiceError> {
        let actor = caller.username.as_str();
        let result = async {
            check_name("name", name)?;
            match self
                .store
                .workspace_insert_with_admin(name, caller.user_id)
                .await
            {
                Ok(record) => Ok(record),
                Err(StoreError::Conflict { what }) => Err(ServiceError::Conflict {
                    code: ErrorCode::WorkspaceExists,
                    message: format!("{what} already exists"),
                }),
                Err(other) => Err(other.into()),
            }
        }
        .await;
        self.audited(
            actor,
            "workspace.create",
            format!("workspaces/{name}"),
            result,
        )
        .await
    }

    /// One workspace, without an access check (for other service calls that made theirs).
    ///
    /// # Errors
    /// `not_found`.
    pub(super) async fn workspace_get_unchecked(
        &self,
        name: &str,
    ) -> Result<WorkspaceRecord, ServiceError> {
        self.store
            .workspace_get(name)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                what: format!("workspace {name:?}"),
            })
    }

    /// One workspace the caller may view.
    ///
    /// # Errors
    /// `not_found` (also when the caller has no role in it).
    pub async fn workspace_get_for(
        &self,
        caller: &Identity,
        name: &str,
    ) -> Result<WorkspaceRecord, ServiceError> {
        self.authorize(caller, name, Role::Viewer).await
    }

    /// A page of the workspaces the caller has a role in (all of them for a platform admin).
    ///
    /// # Errors
    /// `invalid_field` for a bad page.
    pub async fn workspaces_list(
        &self,
        caller: &Identity,
        page: PageRequest,
    ) -> Result<(Vec<WorkspaceRecord>, Option<String>), ServiceError> {
        let size = page_size(&page)?;
        let after = page
            .page_token
            .as_deref()
            .map(super::node::decode_page_token)
            .transpose()?;
        let items = if caller.platform_admin {
            self.store
                .workspaces_list(after.as_deref(), size + 1)
                .await?
        } else {
            self.store
                .workspaces_list_for_user(caller.user_id, after.as_deref(), size + 1)
                .await?
        };
        Ok(paginate(items, size, |w| {
            super::node::encode_page_token(&w.name)
        }))
    }
}
