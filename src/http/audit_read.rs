//! Audited reads: with `CERTCTL_AUDIT_READS=true`, every successful read of an audited resource
//! (certificates and what hangs off them, the reference resources, the audit trail itself) adds
//! an audit row. A read whose record cannot be written fails: with read auditing on, no read goes
//! unrecorded.

use certctl_actors::domain::audit::AuditActor;
use certctl_actors::queries::audit::{AuditRecord, InsertAuditEvent};

use super::problem::ApiError;
use super::AppState;

/// Records `<resource_type>.<verb>` on `resource_id` (`*` for lists) when read auditing is on.
pub async fn audit_read(
    state: &AppState,
    actor: AuditActor,
    resource_type: &str,
    verb: &str,
    resource_id: &str,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    if !state.audit_reads {
        return Ok(());
    }
    let record = AuditRecord {
        actor,
        action: format!("{resource_type}.{verb}"),
        resource_type: resource_type.to_string(),
        details,
    };
    state.db().run(InsertAuditEvent { record, resource_id: resource_id.to_string() }).await?;
    Ok(())
}
