//! The UCS@school connector over LDAP (docs/vendors/ucs-kelvin-ldap.md): schools, persons with
//! their roles and classes for the directory side, and school computers for the device side, both
//! read from one Primary Directory Node with paged searches on one bound connection per fetch.
//!
//! Users are searched per school by `ucsschoolSchool` below the whole base, so a teacher at two
//! schools is found twice and kept once; their memberships come from their own entry. Class
//! groups of every school are read first, so a pupil's classes are known whichever school
//! finds them.
//!
//! Both reads send the school list first: the person run and the device run resolve a school
//! OU to a configured school through the same `school_map`, number attribute and display name.

mod config;
mod mapping;

use std::collections::HashSet;
use std::fmt;

use async_trait::async_trait;
use bestand_model::person::PersonRecord;
use bestand_model::protocol::{FetchFailure, SourcePage};
use ldap3::Scope;

pub use self::config::{UcsLdapConfig, UcsLdapConfigError};
use self::mapping::{
    map_computer, map_school, map_user, ClassIndex, School, SchoolIndex, CLASS_ATTRIBUTES,
    CLASS_FILTER, COMPUTER_ATTRIBUTES, COMPUTER_FILTER, SCHOOL_ATTRIBUTES, SCHOOL_FILTER,
    USER_ATTRIBUTES, USER_TYPES_FILTER,
};
use crate::ldap::{ldap_escape, LdapClient, LdapFailure, LdapSession, SearchRequest};
use crate::{Connector, DirectoryConnector, DirectorySink, PageSink};

/// The UCS@school LDAP source. Build it with `UcsLdap::new`; it is both a
/// `DirectoryConnector` (schools and persons) and a `Connector` (school computers).
pub struct UcsLdap {
    source_name: String,
    client: LdapClient,
    base_dn: String,
    schools: Vec<String>,
    school_number_attribute: Option<String>,
    classes_container: String,
    computers_container: String,
    page_size: usize,
}

impl fmt::Debug for UcsLdap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UcsLdap")
            .field("source_name", &self.source_name)
            .field("client", &self.client)
            .field("base_dn", &self.base_dn)
            .field("schools", &self.schools)
            .finish_non_exhaustive()
    }
}

fn failure(page: impl Into<String>, cause: impl fmt::Display) -> FetchFailure {
    FetchFailure {
        page: Some(page.into()),
        cause: cause.to_string(),
    }
}

fn connect_failure(error: LdapFailure) -> FetchFailure {
    FetchFailure {
        page: None,
        cause: error.to_string(),
    }
}

impl UcsLdap {
    /// Checks the configuration, resolves the bind password and reads `ca_file`. Makes no
    /// network request.
    pub fn new(
        config: UcsLdapConfig,
        source_name: impl Into<String>,
    ) -> Result<UcsLdap, UcsLdapConfigError> {
        config.validate()?;
        let client = LdapClient::new(config.connection())?;
        Ok(UcsLdap {
            source_name: source_name.into(),
            client,
            base_dn: config.base_dn.trim().to_string(),
            schools: config
                .schools
                .iter()
                .map(|school| school.trim().to_string())
                .collect(),
            school_number_attribute: config
                .school_number_attribute
                .map(|attribute| attribute.trim().to_string()),
            classes_container: config.classes_container.trim().to_string(),
            computers_container: config.computers_container.trim().to_string(),
            // Bounded by `LdapClient::new`, which rejects anything above i32::MAX.
            page_size: usize::try_from(config.ldap.page_size).unwrap_or(usize::MAX),
        })
    }

    /// The school OUs below the base, or only those named in `schools`.
    async fn read_schools(&self, session: &mut LdapSession) -> Result<Vec<School>, FetchFailure> {
        let filter = match self.schools.as_slice() {
            [] => SCHOOL_FILTER.to_string(),
            names => format!(
                "(&{SCHOOL_FILTER}(|{}))",
                names
                    .iter()
                    .map(|name| format!("(ou={})", ldap_escape(name.as_str())))
                    .collect::<String>()
            ),
        };
        let mut attributes = SCHOOL_ATTRIBUTES.to_vec();
        if let Some(attribute) = &self.school_number_attribute {
            attributes.push(attribute);
        }
        let entries = session
            .search_all(SearchRequest::new(
                &self.base_dn,
                Scope::Subtree,
                filter,
                &attributes,
            ))
            .await
            .map_err(|error| failure("schools", error))?;
        let mut schools = entries
            .iter()
            .map(|entry| map_school(entry, self.school_number_attribute.as_deref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| failure("schools", error))?;
        schools.sort_by(|a, b| a.key.cmp(&b.key));
        for name in &self.schools {
            if !schools
                .iter()
                .any(|school| school.key.eq_ignore_ascii_case(name))
            {
                return Err(failure(
                    "schools",
                    format!(
                        "{}: the school `{name}` from `schools` is not a \
                         ucsschoolOrganizationalUnit below `{}`",
                        self.client.server(),
                        self.base_dn
                    ),
                ));
            }
        }
        Ok(schools)
    }

    /// The class groups of every school.
    async fn read_classes(
        &self,
        session: &mut LdapSession,
        schools: &[School],
    ) -> Result<ClassIndex, FetchFailure> {
        let mut classes = ClassIndex::default();
        for school in schools {
            let base = format!("{},{}", self.classes_container, school.dn);
            let groups = session
                .search_all(
                    SearchRequest::new(base, Scope::OneLevel, CLASS_FILTER, CLASS_ATTRIBUTES)
                        .missing_base_is_empty(),
                )
                .await
                .map_err(|error| failure(format!("{} classes", school.label()), error))?;
            for group in &groups {
                classes.add_group(&school.key, group);
            }
        }
        Ok(classes)
    }

    async fn run_directory(
        &self,
        session: &mut LdapSession,
        sink: &DirectorySink,
    ) -> Result<u64, FetchFailure> {
        let schools = self.read_schools(session).await?;
        sink.send_schools(schools.iter().map(School::to_directory_school).collect())
            .await?;
        let classes = self.read_classes(session, &schools).await?;
        let index = SchoolIndex::new(&schools, !self.schools.is_empty());
        let mut seen: HashSet<String> = HashSet::new();
        let mut total: u64 = 0;
        for school in &schools {
            let filter = format!(
                "(&{USER_TYPES_FILTER}(ucsschoolSchool={}))",
                ldap_escape(school.key.as_str())
            );
            let mut page_number = 1;
            let label = |page_number: usize| format!("{} users page {page_number}", school.label());
            let mut cursor = session
                .search(SearchRequest::new(
                    &self.base_dn,
                    Scope::Subtree,
                    filter,
                    USER_ATTRIBUTES,
                ))
                .await
                .map_err(|error| failure(label(page_number), error))?;
            let mut page: Vec<PersonRecord> = Vec::new();
            while let Some(entry) = cursor
                .next()
                .await
                .map_err(|error| failure(label(page_number), error))?
            {
                let person = match map_user(&entry, &index, &classes) {
                    Ok(Some(person)) => person,
                    Ok(None) => {
                        tracing::debug!(dn = %entry.dn, "Skipping a UCS@school exam account");
                        continue;
                    }
                    Err(error) => return Err(failure(label(page_number), error)),
                };
                // A user at several schools is found once per school; the first copy holds
                // every membership already.
                if !seen.insert(person.external_id.clone()) {
                    continue;
                }
                page.push(person);
                if page.len() >= self.page_size {
                    total += page.len() as u64;
                    sink.send_persons(label(page_number), std::mem::take(&mut page))
                        .await?;
                    page_number += 1;
                }
            }
            if !page.is_empty() {
                total += page.len() as u64;
                sink.send_persons(label(page_number), page).await?;
            }
        }
        tracing::info!(
            source = %self.source_name,
            schools = schools.len(),
            persons = total,
            "UCS@school directory read complete"
        );
        Ok(total)
    }

    async fn run_devices(
        &self,
        session: &mut LdapSession,
        sink: &PageSink,
    ) -> Result<u64, FetchFailure> {
        let schools = self.read_schools(session).await?;
        // A computer's school hint is its OU; the engine resolves it with this list exactly as
        // the directory run resolves the OU of a membership.
        sink.send_schools(schools.iter().map(School::to_directory_school).collect())
            .await?;
        let mut seen: HashSet<String> = HashSet::new();
        let mut total: u64 = 0;
        for school in &schools {
            let base = format!("{},{}", self.computers_container, school.dn);
            let mut page_number = 1;
            let label =
                |page_number: usize| format!("{} computers page {page_number}", school.label());
            let mut cursor = session
                .search(
                    SearchRequest::new(base, Scope::Subtree, COMPUTER_FILTER, COMPUTER_ATTRIBUTES)
                        .missing_base_is_empty(),
                )
                .await
                .map_err(|error| failure(label(page_number), error))?;
            let mut records = Vec::new();
            while let Some(entry) = cursor
                .next()
                .await
                .map_err(|error| failure(label(page_number), error))?
            {
                let record = map_computer(&entry, &school.key)
                    .map_err(|error| failure(label(page_number), error))?;
                if !seen.insert(record.external_id.clone()) {
                    continue;
                }
                records.push(record);
                if records.len() >= self.page_size {
                    total += records.len() as u64;
                    sink.send(SourcePage {
                        label: label(page_number),
                        records: std::mem::take(&mut records),
                        announced_total: None,
                    })
                    .await?;
                    page_number += 1;
                }
            }
            if !records.is_empty() {
                total += records.len() as u64;
                sink.send(SourcePage {
                    label: label(page_number),
                    records,
                    announced_total: None,
                })
                .await?;
            }
        }
        tracing::info!(
            source = %self.source_name,
            schools = schools.len(),
            devices = total,
            "UCS@school computer read complete"
        );
        Ok(total)
    }
}

#[async_trait]
impl DirectoryConnector for UcsLdap {
    async fn fetch_directory(&self, sink: &DirectorySink) -> Result<u64, FetchFailure> {
        tracing::info!(source = %self.source_name, server = %self.client.server(), "UCS@school directory read starting");
        let mut session = self.client.connect().await.map_err(connect_failure)?;
        let result = self.run_directory(&mut session, sink).await;
        session.close().await;
        if let Err(failure) = &result {
            tracing::warn!(source = %self.source_name, %failure, "UCS@school directory read failed");
        }
        result
    }
}

#[async_trait]
impl Connector for UcsLdap {
    async fn fetch(&self, sink: &PageSink) -> Result<u64, FetchFailure> {
        tracing::info!(source = %self.source_name, server = %self.client.server(), "UCS@school computer read starting");
        let mut session = self.client.connect().await.map_err(connect_failure)?;
        let result = self.run_devices(&mut session, sink).await;
        session.close().await;
        if let Err(failure) = &result {
            tracing::warn!(source = %self.source_name, %failure, "UCS@school computer read failed");
        }
        result
    }
}
