//! Splitting a shared cost between the authorities of a cooperation by pupils weighted by
//! school level (`bestand reports cost-split`): the key of Hameln-Pyrmont, where primary pupils
//! weigh 15, lower secondary 35, upper secondary and vocational 50 (docs/reports.md).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::Scope;
use crate::error::CoreError;
use crate::model::SchoolType;
use crate::planning::{self, Level};
use crate::store::in_scope;

/// The weight of a pupil per level, in percent (15, 35, 50 by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LevelWeights {
    pub primary: Decimal,
    pub lower_secondary: Decimal,
    /// Upper secondary and vocational alike.
    pub upper_secondary_and_vocational: Decimal,
}

impl Default for LevelWeights {
    fn default() -> Self {
        LevelWeights {
            primary: Decimal::from(15),
            lower_secondary: Decimal::from(35),
            upper_secondary_and_vocational: Decimal::from(50),
        }
    }
}

impl LevelWeights {
    fn of(&self, level: Level) -> Decimal {
        match level {
            Level::Primary => self.primary,
            Level::LowerSecondary => self.lower_secondary,
            Level::UpperSecondary | Level::Vocational => self.upper_secondary_and_vocational,
        }
    }
}

/// One authority's part of the cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CostShare {
    pub authority: String,
    pub name: String,
    pub primary: u32,
    pub lower_secondary: u32,
    pub upper_secondary: u32,
    pub vocational: u32,
    /// Pupils times their level's weight in percent, divided by 100.
    pub weighted_pupils: Decimal,
    /// Its share in percent, to two places (for reading; the amount is exact).
    pub share_percent: Decimal,
    pub amount: Decimal,
    /// Schools whose pupils were entered by hand, and schools counted from the directory.
    pub schools_entered: u32,
    pub schools_from_directory: u32,
}

/// `bestand reports cost-split`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CostSplit {
    pub amount: Decimal,
    pub weights: LevelWeights,
    pub shares: Vec<CostShare>,
}

/// Splits `amount` between the authorities in `scope` (only those named by slug in
/// `authorities`, if any) by their pupils weighted by level. Pupils per school and level come
/// from `school_pupils` where a school has rows, else from the directory (persons with role
/// `student` who have not left, their level from `planning::pupil_level`). The amounts are
/// rounded to cents by the largest remainder, so they add up to exactly `amount`. An authority
/// named that is unknown or outside the scope is not found.
pub async fn cost_split(
    pool: &PgPool,
    scope: &Scope,
    amount: Decimal,
    weights: &LevelWeights,
    authorities: &[String],
) -> Result<CostSplit, CoreError> {
    if amount < Decimal::ZERO {
        return Err(CoreError::Invalid(format!(
            "the amount to split must not be negative, not {amount}"
        )));
    }
    let known: Vec<(Uuid, String, String)> = sqlx::query_as(
        "select authority_id, slug, name from school_authority \
         where ($1::uuid is null or authority_id = $1) order by slug",
    )
    .bind(scope.authority_param())
    .fetch_all(pool)
    .await?;
    for slug in authorities {
        if !known.iter().any(|(_, known, _)| known == slug) {
            return Err(CoreError::NotFound {
                what: "authority",
                key: slug.clone(),
            });
        }
    }
    let chosen: Vec<&(Uuid, String, String)> = known
        .iter()
        .filter(|(_, slug, _)| authorities.is_empty() || authorities.contains(slug))
        .collect();
    let ids: Vec<Uuid> = chosen.iter().map(|(id, _, _)| *id).collect();
    let school_scope = in_scope("s.authority_id", "s.school_id", 1, 2);
    // Entered numbers per school and level.
    let entered: Vec<(Uuid, Uuid, String, i64)> = sqlx::query_as(&format!(
        "select s.authority_id, s.school_id, sp.level, sp.pupils::bigint from school_pupils sp \
         join school s using (school_id) where {school_scope} and s.authority_id = any($3)"
    ))
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    // The directory's pupils of the other schools, one class per pupil and school.
    let directory: Vec<(Uuid, Uuid, String, Option<String>, i64)> = sqlx::query_as(&format!(
        "select s.authority_id, s.school_id, s.school_type, pupil.class_name, count(*) \
         from school s join (select m.school_id, m.person_id, min(m.class_name) as class_name \
           from person_membership m join person p using (person_id) \
           where m.role = 'student' and p.left_at is null group by m.school_id, m.person_id) pupil \
           on pupil.school_id = s.school_id \
         where {school_scope} and s.authority_id = any($3) \
         and not exists (select 1 from school_pupils sp where sp.school_id = s.school_id) \
         group by 1, 2, 3, 4"
    ))
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    #[derive(Default)]
    struct Tally {
        pupils: BTreeMap<Level, u32>,
        entered: std::collections::BTreeSet<Uuid>,
        directory: std::collections::BTreeSet<Uuid>,
    }
    let mut tallies: BTreeMap<Uuid, Tally> = BTreeMap::new();
    for (authority, school, level, pupils) in entered {
        let tally = tallies.entry(authority).or_default();
        if let Some(level) = Level::parse(&level) {
            *tally.pupils.entry(level).or_default() += u32::try_from(pupils).unwrap_or(0);
        }
        tally.entered.insert(school);
    }
    for (authority, school, school_type, class_name, pupils) in directory {
        let school_type: SchoolType = school_type.parse().unwrap_or(SchoolType::Other);
        let level = planning::pupil_level(school_type, class_name.as_deref());
        let tally = tallies.entry(authority).or_default();
        *tally.pupils.entry(level).or_default() += u32::try_from(pupils).unwrap_or(0);
        tally.directory.insert(school);
    }
    let hundred = Decimal::from(100);
    let weighted: Vec<Decimal> = chosen
        .iter()
        .map(|(id, _, _)| {
            tallies.get(id).map_or(Decimal::ZERO, |tally| {
                tally
                    .pupils
                    .iter()
                    .map(|(level, pupils)| Decimal::from(*pupils) * weights.of(*level) / hundred)
                    .sum()
            })
        })
        .collect();
    let amounts = planning::split_largest_remainder(amount, &weighted);
    let total: Decimal = weighted.iter().copied().sum();
    let shares = chosen
        .iter()
        .zip(weighted.iter().zip(amounts))
        .map(|((id, slug, name), (weighted, amount))| {
            let tally = tallies.remove(id).unwrap_or_default();
            let pupils = |level| tally.pupils.get(&level).copied().unwrap_or(0);
            CostShare {
                authority: slug.clone(),
                name: name.clone(),
                primary: pupils(Level::Primary),
                lower_secondary: pupils(Level::LowerSecondary),
                upper_secondary: pupils(Level::UpperSecondary),
                vocational: pupils(Level::Vocational),
                weighted_pupils: weighted.normalize(),
                share_percent: if total > Decimal::ZERO {
                    (*weighted * hundred / total).round_dp(2)
                } else {
                    Decimal::ZERO
                },
                amount,
                schools_entered: u32::try_from(tally.entered.len()).unwrap_or(0),
                schools_from_directory: u32::try_from(tally.directory.len()).unwrap_or(0),
            }
        })
        .collect();
    Ok(CostSplit {
        amount: amount.round_dp(2),
        weights: weights.clone(),
        shares,
    })
}
