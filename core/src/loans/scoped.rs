//! How loans keep to the caller's scope: the SQL condition every loan query carries, and the
//! lookups of the device and the borrower a loan step names (the store's, with the same scope).
//! A row outside the scope answers `NotFound`, exactly as an unknown key does.

use sqlx::{Postgres, QueryBuilder};

use crate::access::Scope;

/// Appends ` and ...` limiting rows of `alias` (a table with `authority_id` and `school_id`:
/// loan, device, school) to `scope`. A row without a school is outside a school scope.
pub(crate) fn push_scope(query: &mut QueryBuilder<'_, Postgres>, scope: &Scope, alias: &str) {
    push_authority(query, scope, alias);
    if let Some(schools) = scope.schools_param() {
        query
            .push(format!(" and {alias}.school_id = any("))
            .push_bind(schools)
            .push(")");
    }
}

fn push_authority(query: &mut QueryBuilder<'_, Postgres>, scope: &Scope, alias: &str) {
    if let Some(authority) = scope.authority_param() {
        query
            .push(format!(" and {alias}.authority_id = "))
            .push_bind(authority);
    }
}

// A device or borrower to lend is looked up exactly as the store looks it up for a scope.
pub(crate) use crate::store::devices::resolve_device;
pub(crate) use crate::store::persons::resolve_person;
