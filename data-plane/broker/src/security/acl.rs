//! Kafka ACLs: the bindings the metadata quorum stores ([`AclBinding`]), the filters of
//! `DescribeAcls`/`DeleteAcls` ([`AclFilter`]), and the decision ([`authorize`]), with Kafka's
//! `StandardAuthorizer` rules:
//! - a binding applies to a resource when its pattern is `LITERAL` with the resource's name or
//!   `*`, or `PREFIXED` with a prefix of the name; to a principal when it names it or `User:*`;
//!   to a host when it names the client's address or `*`;
//! - any applicable `DENY` for the operation (or `ALL`) refuses, whatever allows;
//! - otherwise an applicable `ALLOW` for the operation, for `ALL`, or for an operation that
//!   implies it (`READ`, `WRITE`, `DELETE`, `ALTER` imply `DESCRIBE`; `ALTER_CONFIGS` implies
//!   `DESCRIBE_CONFIGS`) allows;
//! - nothing applicable refuses (`allow.everyone.if.no.acl.found=false`). Super users are
//!   checked by the caller, before any of this.
//!
//! The numeric codes are the admin protocol's (`AclOperation`, `ResourceType`,
//! `PatternType`, `AclPermissionType` in Kafka's clients).

use serde::{Deserialize, Serialize};

/// The name of the one cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// A resource type ACLs can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    /// A topic (2).
    Topic,
    /// A consumer group (3).
    Group,
    /// The cluster (4), named [`CLUSTER_NAME`].
    Cluster,
    /// A transactional id (5).
    TransactionalId,
}

/// How a binding's name matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PatternType {
    /// The exact name, or `*` for every resource of the type (3).
    Literal,
    /// Every name starting with it (4).
    Prefixed,
}

/// An operation, with its protocol code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(i8)]
pub enum Operation {
    /// Every operation.
    All = 2,
    /// `READ`.
    Read = 3,
    /// `WRITE`.
    Write = 4,
    /// `CREATE`.
    Create = 5,
    /// `DELETE`.
    Delete = 6,
    /// `ALTER`.
    Alter = 7,
    /// `DESCRIBE`.
    Describe = 8,
    /// `CLUSTER_ACTION`.
    ClusterAction = 9,
    /// `DESCRIBE_CONFIGS`.
    DescribeConfigs = 10,
    /// `ALTER_CONFIGS`.
    AlterConfigs = 11,
    /// `IDEMPOTENT_WRITE`.
    IdempotentWrite = 12,
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// 2.
    Deny,
    /// 3.
    Allow,
}

impl ResourceType {
    /// The protocol code.
    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
        }
    }

    /// The type of a protocol code (`None` for ANY, UNKNOWN and types hdi has no ACLs for).
    pub fn from_code(code: i8) -> Option<ResourceType> {
        [
            ResourceType::Topic,
            ResourceType::Group,
            ResourceType::Cluster,
            ResourceType::TransactionalId,
        ]
        .into_iter()
        .find(|t| t.code() == code)
    }

    /// The operations that mean something for this type (Kafka's `AclEntry.supportedOperations`).
    pub fn operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            ResourceType::Topic => &[
                All,
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[All, Read, Describe, Delete],
            ResourceType::Cluster => &[
                All,
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[All, Describe, Write],
        }
    }
}

impl PatternType {
    /// The protocol code.
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }
}

impl Operation {
    /// The protocol code.
    pub fn code(self) -> i8 {
        self as i8
    }

    /// The operation of a protocol code (`None` for ANY, UNKNOWN and token operations).
    pub fn from_code(code: i8) -> Option<Operation> {
        Some(match code {
            2 => Operation::All,
            3 => Operation::Read,
            4 => Operation::Write,
            5 => Operation::Create,
            6 => Operation::Delete,
            7 => Operation::Alter,
            8 => Operation::Describe,
            9 => Operation::ClusterAction,
            10 => Operation::DescribeConfigs,
            11 => Operation::AlterConfigs,
            12 => Operation::IdempotentWrite,
            _ => return None,
        })
    }

    /// Whether an ALLOW for `self` also allows `wanted`.
    fn allows(self, wanted: Operation) -> bool {
        self == wanted
            || self == Operation::All
            || (wanted == Operation::Describe
                && matches!(
                    self,
                    Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
                ))
            || (wanted == Operation::DescribeConfigs && self == Operation::AlterConfigs)
    }
}

impl Permission {
    /// The protocol code.
    pub fn code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }
}

/// One ACL.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// Resource type.
    pub resource_type: ResourceType,
    /// Pattern type.
    pub pattern: PatternType,
    /// Resource name (or prefix, or `*`).
    pub name: String,
    /// `User:<name>` or `User:*`.
    pub principal: String,
    /// Client address or `*`.
    pub host: String,
    /// Operation.
    pub operation: Operation,
    /// Allow or deny.
    pub permission: Permission,
}

/// How a filter matches pattern types (`PatternType` codes 1 to 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternFilter {
    /// Any pattern type, with the filter's name equal (1).
    Any,
    /// Every binding that applies to the named resource (2).
    Match,
    /// This pattern type, with the name equal.
    Exactly(PatternType),
}

/// A filter of `DescribeAcls` and `DeleteAcls` (`None` fields match anything).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    /// Resource type.
    pub resource_type: Option<ResourceType>,
    /// Pattern matching.
    pub pattern: PatternFilter,
    /// Resource name.
    pub name: Option<String>,
    /// Principal.
    pub principal: Option<String>,
    /// Host.
    pub host: Option<String>,
    /// Operation.
    pub operation: Option<Operation>,
    /// Permission.
    pub permission: Option<Permission>,
}

/// Why an ACL or a filter is refused (`INVALID_REQUEST`, with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidAcl(pub String);

fn principal_valid(principal: &str) -> bool {
    principal
        .strip_prefix("User:")
        .is_some_and(|name| !name.is_empty() && !name.chars().any(char::is_control))
}

impl AclBinding {
    /// Builds a binding from protocol codes, refusing what Kafka refuses.
    ///
    /// # Errors
    /// The first thing wrong with it.
    pub fn from_codes(
        resource_type: i8,
        name: &str,
        pattern: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<AclBinding, InvalidAcl> {
        let resource_type = ResourceType::from_code(resource_type).ok_or_else(|| {
            InvalidAcl(format!(
                "resource type {resource_type} is not allowed in an ACL"
            ))
        })?;
        let pattern = match pattern {
            3 => PatternType::Literal,
            4 => PatternType::Prefixed,
            other => {
                return Err(InvalidAcl(format!(
                    "pattern type {other} is not allowed in an ACL: use LITERAL (3) or PREFIXED (4)"
                )));
            }
        };
        let operation = Operation::from_code(operation)
            .filter(|o| resource_type.operations().contains(o))
            .ok_or_else(|| {
                InvalidAcl(format!(
                    "operation {operation} is not valid for resource type {resource_type:?}"
                ))
            })?;
        let permission = match permission {
            2 => Permission::Deny,
            3 => Permission::Allow,
            other => {
                return Err(InvalidAcl(format!(
                    "permission type {other} is not allowed in an ACL: use DENY (2) or ALLOW (3)"
                )));
            }
        };
        if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
            return Err(InvalidAcl(
                "the resource name must hold 1 to 255 printable characters".into(),
            ));
        }
        if resource_type == ResourceType::Cluster
            && (pattern != PatternType::Literal || name != CLUSTER_NAME)
        {
            return Err(InvalidAcl(format!(
                "the cluster resource is the literal {CLUSTER_NAME:?}"
            )));
        }
        if pattern == PatternType::Prefixed && name == "*" {
            return Err(InvalidAcl("a PREFIXED pattern cannot be \"*\"".into()));
        }
        if !principal_valid(principal) {
            return Err(InvalidAcl(format!(
                "principal {principal:?} must be User:<name> or User:*"
            )));
        }
        if host.is_empty() || host.len() > 255 || host.chars().any(char::is_control) {
            return Err(InvalidAcl("the host must be an address or \"*\"".into()));
        }
        Ok(AclBinding {
            resource_type,
            pattern,
            name: name.to_owned(),
            principal: principal.to_owned(),
            host: host.to_owned(),
            operation,
            permission,
        })
    }

    /// Whether this binding's pattern covers the resource `name`.
    fn covers(&self, name: &str) -> bool {
        match self.pattern {
            PatternType::Literal => self.name == name || self.name == "*",
            PatternType::Prefixed => name.starts_with(&self.name),
        }
    }
}

impl AclFilter {
    /// Builds a filter from protocol codes (1 = ANY; a null string = any).
    ///
    /// # Errors
    /// Codes that are not filters.
    pub fn from_codes(
        resource_type: i8,
        name: Option<&str>,
        pattern: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<AclFilter, InvalidAcl> {
        let resource_type = match resource_type {
            1 => None,
            code => Some(ResourceType::from_code(code).ok_or_else(|| {
                InvalidAcl(format!("resource type {code} is not a valid filter"))
            })?),
        };
        let pattern = match pattern {
            1 => PatternFilter::Any,
            2 => PatternFilter::Match,
            3 => PatternFilter::Exactly(PatternType::Literal),
            4 => PatternFilter::Exactly(PatternType::Prefixed),
            other => {
                return Err(InvalidAcl(format!(
                    "pattern type {other} is not a valid filter"
                )));
            }
        };
        let operation = match operation {
            1 => None,
            code => Some(
                Operation::from_code(code)
                    .ok_or_else(|| InvalidAcl(format!("operation {code} is not a valid filter")))?,
            ),
        };
        let permission = match permission {
            1 => None,
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            other => {
                return Err(InvalidAcl(format!(
                    "permission type {other} is not a valid filter"
                )));
            }
        };
        Ok(AclFilter {
            resource_type,
            pattern,
            name: name.map(str::to_owned),
            principal: principal.map(str::to_owned),
            host: host.map(str::to_owned),
            operation,
            permission,
        })
    }

    /// Whether `binding` passes this filter.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        let name = match (&self.pattern, &self.name) {
            (_, None) => true,
            (PatternFilter::Match, Some(name)) => binding.covers(name),
            (PatternFilter::Any, Some(name)) => &binding.name == name,
            (PatternFilter::Exactly(_), Some(name)) => &binding.name == name,
        };
        let pattern = match self.pattern {
            PatternFilter::Any => true,
            // MATCH without a name: every binding (Kafka treats it as ANY).
            PatternFilter::Match => true,
            PatternFilter::Exactly(p) => binding.pattern == p,
        };
        name && pattern
            && self
                .resource_type
                .is_none_or(|t| t == binding.resource_type)
            && self
                .principal
                .as_ref()
                .is_none_or(|p| p == &binding.principal)
            && self.host.as_ref().is_none_or(|h| h == &binding.host)
            && self.operation.is_none_or(|o| o == binding.operation)
            && self.permission.is_none_or(|p| p == binding.permission)
    }
}

/// Whether `principal` (`User:<name>`) calling from `host` may do `operation` on the resource
/// `resource_type`/`name`, by `acls` alone (super users are the caller's check).
pub fn authorize(
    acls: &[AclBinding],
    principal: &str,
    host: &str,
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    let mut allowed = false;
    for acl in acls.iter().filter(|acl| {
        acl.resource_type == resource_type
            && acl.covers(name)
            && (acl.principal == principal || acl.principal == "User:*")
            && (acl.host == "*" || acl.host == host)
    }) {
        match acl.permission {
            Permission::Deny if acl.operation == operation || acl.operation == Operation::All => {
                return false;
            }
            Permission::Deny => {}
            Permission::Allow => allowed |= acl.operation.allows(operation),
        }
    }
    allowed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn acl(t: i8, name: &str, pattern: i8, who: &str, op: i8, perm: i8) -> AclBinding {
        AclBinding::from_codes(t, name, pattern, who, "*", op, perm).unwrap()
    }

    /// Kafka's `AclOperation` codes, both ways; ANY (1), UNKNOWN (0) and the token operations
    /// (13, 14) are not operations of a binding.
    #[test]
    fn operation_codes_are_kafkas() {
        for code in i8::MIN..=i8::MAX {
            let operation = Operation::from_code(code);
            assert_eq!(
                operation.map(Operation::code),
                (2..=12).contains(&code).then_some(code)
            );
        }
        assert_eq!(Operation::from_code(8), Some(Operation::Describe));
        assert_eq!(Operation::IdempotentWrite.code(), 12);
    }

    #[test]
    fn kafka_rules_decide() {
        let acls = vec![
            acl(2, "a", 3, "User:alice", 3, 3),  // allow alice READ topic a
            acl(2, "pay-", 4, "User:bob", 4, 3), // allow bob WRITE topics pay-*
            acl(2, "pay-secret", 3, "User:bob", 2, 2), // deny bob ALL on pay-secret
            acl(3, "*", 3, "User:*", 3, 3),      // allow everyone READ every group
            acl(2, "c", 3, "User:carol", 11, 3), // carol ALTER_CONFIGS topic c
        ];
        use Operation::*;
        use ResourceType::*;
        let can = |who: &str, op, t, name| authorize(&acls, who, "127.0.0.1", op, t, name);
        assert!(can("User:alice", Read, Topic, "a"));
        assert!(can("User:alice", Describe, Topic, "a")); // implied
        assert!(!can("User:alice", Write, Topic, "a"));
        assert!(!can("User:alice", Read, Topic, "b"));
        assert!(!can("User:alice", Read, Topic, "aa")); // literal is not a prefix
        assert!(can("User:bob", Write, Topic, "pay-in"));
        assert!(!can("User:bob", Write, Topic, "pay-secret")); // deny beats allow
        assert!(!can("User:bob", Write, Topic, "pa"));
        assert!(can("User:dave", Read, Group, "any-group"));
        assert!(!can("User:dave", Delete, Group, "any-group"));
        assert!(can("User:carol", DescribeConfigs, Topic, "c"));
        assert!(!can("User:carol", Describe, Topic, "c"));
        assert!(!can("User:alice", Describe, Cluster, CLUSTER_NAME)); // nothing applies
    }

    #[test]
    fn hosts_narrow_bindings() {
        let only = AclBinding::from_codes(2, "t", 3, "User:a", "10.0.0.1", 3, 3).unwrap();
        let acls = [only];
        assert!(authorize(
            &acls,
            "User:a",
            "10.0.0.1",
            Operation::Read,
            ResourceType::Topic,
            "t"
        ));
        assert!(!authorize(
            &acls,
            "User:a",
            "127.0.0.1",
            Operation::Read,
            ResourceType::Topic,
            "t"
        ));
    }

    #[test]
    fn invalid_bindings_are_refused() {
        assert!(AclBinding::from_codes(1, "t", 3, "User:a", "*", 3, 3).is_err()); // ANY type
        assert!(AclBinding::from_codes(2, "t", 2, "User:a", "*", 3, 3).is_err()); // MATCH
        assert!(AclBinding::from_codes(2, "t", 3, "alice", "*", 3, 3).is_err()); // principal
        assert!(AclBinding::from_codes(2, "t", 3, "User:a", "*", 1, 3).is_err()); // ANY op
        assert!(AclBinding::from_codes(3, "g", 3, "User:a", "*", 4, 3).is_err()); // WRITE group
        assert!(AclBinding::from_codes(4, "x", 3, "User:a", "*", 7, 3).is_err()); // cluster name
        assert!(AclBinding::from_codes(2, "t", 3, "User:a", "*", 3, 1).is_err()); // ANY perm
        assert!(AclBinding::from_codes(2, "", 3, "User:a", "*", 3, 3).is_err());
        assert!(AclBinding::from_codes(4, CLUSTER_NAME, 3, "User:a", "*", 7, 3).is_ok());
    }

    #[test]
    fn filters_match_as_kafka_does() {
        let prefixed = acl(2, "pay-", 4, "User:bob", 4, 3);
        let literal = acl(2, "pay-in", 3, "User:bob", 4, 3);
        let any = AclFilter::from_codes(1, None, 1, None, None, 1, 1).unwrap();
        assert!(any.matches(&prefixed) && any.matches(&literal));
        let matching = AclFilter::from_codes(2, Some("pay-in"), 2, None, None, 1, 1).unwrap();
        assert!(matching.matches(&prefixed) && matching.matches(&literal));
        let exact = AclFilter::from_codes(2, Some("pay-"), 4, None, None, 1, 1).unwrap();
        assert!(exact.matches(&prefixed) && !exact.matches(&literal));
        let by_user = AclFilter::from_codes(1, None, 1, Some("User:eve"), None, 1, 1).unwrap();
        assert!(!by_user.matches(&literal));
        assert!(AclFilter::from_codes(9, None, 1, None, None, 1, 1).is_err());
    }
}
