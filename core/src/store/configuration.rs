//! Authorities, schools and sources come from the configuration file; this writes them into
//! the database so that rows can reference them. Nothing configured is ever deleted here.
//! (Not to be confused with `sync::directory`, the runs of school directories.)

use sqlx::PgPool;
use uuid::Uuid;

use crate::access::{Actor, Scope};
use crate::error::CoreError;
use crate::model::SchoolType;
use crate::store::SourceRef;

/// A school authority (Schulträger) as configured.
#[derive(Debug, Clone)]
pub struct AuthoritySpec {
    pub slug: String,
    pub name: String,
    /// Normalized MAC addresses never used to match (`identity::MatchingRules`).
    pub shared_macs: Vec<String>,
    pub schools: Vec<SchoolSpec>,
}

/// A school as configured.
#[derive(Debug, Clone)]
pub struct SchoolSpec {
    pub number: String,
    pub name: String,
    pub school_type: SchoolType,
    pub aliases: Vec<String>,
}

/// A source as configured.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub name: String,
    pub kind: String,
    pub authority_slug: String,
}

/// Creates or updates the configured authorities, schools and sources; returns the sources.
///
/// Configuring is the work of whoever administers a whole authority: `Scope::All` may create
/// and change any authority; `Scope::Authority` only change its own, already created one (its
/// schools and sources); a scope of schools may configure nothing.
pub async fn apply_configuration(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    authorities: &[AuthoritySpec],
    sources: &[SourceSpec],
) -> Result<Vec<SourceRef>, CoreError> {
    if let Scope::Schools { .. } = scope {
        return Err(CoreError::Invalid(
            "the configuration of authorities, schools and sources needs the scope of a whole \
             authority; a scope of some schools cannot apply it"
                .to_string(),
        ));
    }
    let mut tx = pool.begin().await?;
    for authority in authorities {
        if let Some(own) = scope.authority_param() {
            let existing: Option<Uuid> =
                sqlx::query_scalar("select authority_id from school_authority where slug = $1")
                    .bind(&authority.slug)
                    .fetch_optional(&mut *tx)
                    .await?;
            if existing != Some(own) {
                return Err(CoreError::Invalid(format!(
                    "authority '{}' is outside the scope this configuration is applied with; \
                     only the authority itself can be configured in its scope",
                    authority.slug
                )));
            }
        }
        let authority_id: Uuid = sqlx::query_scalar(
            "insert into school_authority (slug, name, shared_macs) values ($1, $2, $3) \
             on conflict (slug) do update set name = excluded.name, \
             shared_macs = excluded.shared_macs returning authority_id",
        )
        .bind(&authority.slug)
        .bind(&authority.name)
        .bind(&authority.shared_macs)
        .fetch_one(&mut *tx)
        .await?;
        for school in &authority.schools {
            sqlx::query(
                "insert into school (authority_id, school_number, name, school_type, aliases) \
                 values ($1, $2, $3, $4, $5) on conflict (authority_id, school_number) do update \
                 set name = excluded.name, school_type = excluded.school_type, aliases = excluded.aliases",
            )
            .bind(authority_id)
            .bind(&school.number)
            .bind(&school.name)
            .bind(school.school_type.as_str())
            .bind(&school.aliases)
            .execute(&mut *tx)
            .await?;
        }
    }
    let mut refs = Vec::new();
    for source in sources {
        let authority_id: Option<Uuid> =
            sqlx::query_scalar("select authority_id from school_authority where slug = $1")
                .bind(&source.authority_slug)
                .fetch_optional(&mut *tx)
                .await?;
        let authority_id = authority_id.filter(|found| scope.covers_authority(*found));
        let Some(authority_id) = authority_id else {
            return Err(CoreError::Invalid(format!(
                "source '{}' names authority '{}', which is not configured",
                source.name, source.authority_slug
            )));
        };
        let existing: Option<(Uuid, Uuid)> =
            sqlx::query_as("select source_id, authority_id from source where name = $1")
                .bind(&source.name)
                .fetch_optional(&mut *tx)
                .await?;
        let source_id = match existing {
            Some((_, existing_authority)) if existing_authority != authority_id => {
                return Err(CoreError::Conflict(format!(
                    "source '{}' already belongs to another authority; a source cannot move between \
                     authorities (give the new one another name)",
                    source.name
                )))
            }
            Some((source_id, _)) => {
                sqlx::query("update source set kind = $2 where source_id = $1")
                    .bind(source_id)
                    .bind(&source.kind)
                    .execute(&mut *tx)
                    .await?;
                source_id
            }
            None => {
                sqlx::query_scalar(
                    "insert into source (authority_id, name, kind) values ($1, $2, $3) returning source_id",
                )
                .bind(authority_id)
                .bind(&source.name)
                .bind(&source.kind)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        refs.push(SourceRef {
            source_id,
            authority_id,
            name: source.name.clone(),
            kind: source.kind.clone(),
        });
    }
    tx.commit().await?;
    tracing::info!(
        actor = %actor,
        authorities = authorities.len(),
        sources = refs.len(),
        "configuration applied"
    );
    Ok(refs)
}
