//! Audit events: every mutation's outcome is recorded (accepted or refused), and platform admins
//! list them.

use super::auth::require_platform_admin;
use super::node::PageRequest;
use super::page::{page_after, page_size, paginate};
use super::{Service, ServiceError};
use crate::auth::Identity;
use crate::model::AuditRecord;

impl Service {
    pub(super) async fn audit(
        &self,
        actor: &str,
        action: &str,
        resource: &str,
        outcome: &Result<(), &ServiceError>,
    ) {
        let (outcome, detail) = match outcome {
            Ok(()) => ("accepted".to_owned(), None),
            Err(error) => (error.code().as_str().to_owned(), Some(error.to_string())),
        };
        let event = AuditRecord {
            id: 0,
            at: chrono::Utc::now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            resource: resource.to_owned(),
            outcome,
            detail,
        };
        if let Err(error) = self.store.audit_insert(&event).await {
            tracing::error!(error = %error, action, resource, "cannot write the audit event");
        }
    }

    pub(super) async fn audited<T>(
        &self,
        actor: &str,
        action: &str,
        resource: String,
        result: Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        self.audit(actor, action, &resource, &result.as_ref().map(|_| ()))
            .await;
        if result.is_ok() {
            self.poke.notify_one();
        }
        result
    }

    /// A page of audit events, newest first (platform admins only).
    ///
    /// # Errors
    /// `forbidden`, `invalid_field`.
    pub async fn audit_list(
        &self,
        caller: &Identity,
        page: PageRequest,
    ) -> Result<(Vec<AuditRecord>, Option<String>), ServiceError> {
        require_platform_admin(caller)?;
        let size = page_size(&page)?;
        let before = page_after::<i64>(&page)?;
        let items = self.store.audit_list(before, size + 1).await?;
        Ok(paginate(items, size, |e| e.id.to_string()))
    }
}
