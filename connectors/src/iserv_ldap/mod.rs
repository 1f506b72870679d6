//! The IServ connector over LDAP (docs/vendors/iserv.md#ldap): the persons of one school's IServ,
//! with roles and classes taken from group membership. IServ has no REST API for this; LDAP
//! (LDAPS on port 10636) is the path IServ documents for external readers.
//!
//! Groups are read first (all of them when classes or former pupils' groups are recognised by
//! pattern, else only the configured role and class groups), then users page by page. Users in
//! no role group are no persons: they are counted by kind, never sent (docs/persons.md).

mod config;
mod mapping;

use std::fmt;

use async_trait::async_trait;
use bestand_model::person::{DirectorySchool, NotPersonCounts, PersonRecord};
use bestand_model::protocol::FetchFailure;
use ldap3::Scope;

use self::config::GroupRules;
pub use self::config::{
    IservLdapConfig, IservLdapConfigError, DEFAULT_CLASS_GROUP_PATTERN,
    DEFAULT_FORMER_GROUP_PATTERN, DEFAULT_LDAPS_PORT,
};
use self::mapping::{map_user, GroupIndex, Mapped, GROUP_ATTRIBUTES, USER_ATTRIBUTES};
use crate::ldap::{ldap_escape, LdapClient, LdapSession, SearchRequest};
use crate::{DirectoryConnector, DirectorySink};

/// The IServ LDAP source of one school. Build it with `IservLdap::new`.
pub struct IservLdap {
    source_name: String,
    client: LdapClient,
    school: DirectorySchool,
    users_base: String,
    users_filter: String,
    groups_base: String,
    groups_filter: String,
    rules: GroupRules,
    page_size: usize,
}

impl fmt::Debug for IservLdap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IservLdap")
            .field("source_name", &self.source_name)
            .field("client", &self.client)
            .field("school", &self.school.key)
            .field("users_base", &self.users_base)
            .field("groups_base", &self.groups_base)
            .finish_non_exhaustive()
    }
}

fn failure(page: impl Into<String>, cause: impl fmt::Display) -> FetchFailure {
    FetchFailure {
        page: Some(page.into()),
        cause: cause.to_string(),
    }
}

impl IservLdap {
    /// Checks the configuration, resolves the bind password and reads `ca_file`. Makes no
    /// network request.
    pub fn new(
        config: IservLdapConfig,
        source_name: impl Into<String>,
    ) -> Result<IservLdap, IservLdapConfigError> {
        let rules = config.validate()?;
        let client = LdapClient::new(config.connection())?;
        Ok(IservLdap {
            source_name: source_name.into(),
            client,
            school: DirectorySchool {
                key: config.school.trim().to_string(),
                display_name: config.school_name.clone(),
                school_number: config.school_number.clone(),
            },
            users_base: config.users_base(),
            users_filter: config.users_filter.trim().to_string(),
            groups_base: config.groups_base(),
            groups_filter: config.groups_filter.trim().to_string(),
            rules,
            // Bounded by `LdapClient::new`, which rejects anything above i32::MAX.
            page_size: usize::try_from(config.ldap.page_size).unwrap_or(usize::MAX),
        })
    }

    /// The group search filter: every group when classes are recognised by pattern (a regular
    /// expression cannot be put into a filter), else only the named groups.
    fn group_filter(&self) -> String {
        if self.rules.class_pattern.is_some() || self.rules.former_pattern.is_some() {
            return self.groups_filter.clone();
        }
        let names: String = self
            .rules
            .roles
            .keys()
            .chain(&self.rules.class_groups)
            .map(|name| format!("(cn={})", ldap_escape(name.as_str())))
            .collect();
        format!("(&{}(|{names}))", self.groups_filter)
    }

    async fn run(
        &self,
        session: &mut LdapSession,
        sink: &DirectorySink,
    ) -> Result<u64, FetchFailure> {
        sink.send_schools(vec![self.school.clone()]).await?;
        let groups_label = format!("{} groups", self.school.key);
        let group_entries = session
            .search_all(SearchRequest::new(
                &self.groups_base,
                Scope::Subtree,
                self.group_filter(),
                GROUP_ATTRIBUTES,
            ))
            .await
            .map_err(|error| failure(&groups_label, error))?;
        let mut groups = GroupIndex::default();
        for group in &group_entries {
            groups.add_group(group);
        }

        let label = |page_number: usize| format!("{} users page {page_number}", self.school.key);
        let mut page_number = 1;
        let mut users = SearchRequest::new(
            &self.users_base,
            Scope::Subtree,
            &self.users_filter,
            USER_ATTRIBUTES,
        );
        if let Some((attribute, _)) = &self.rules.shared_id {
            users.attributes.push(attribute.clone());
        }
        let mut cursor = session
            .search(users)
            .await
            .map_err(|error| failure(label(page_number), error))?;
        let mut total: u64 = 0;
        let mut page: Vec<PersonRecord> = Vec::new();
        let mut not_persons = NotPersonCounts::new();
        while let Some(entry) = cursor
            .next()
            .await
            .map_err(|error| failure(label(page_number), error))?
        {
            match map_user(&entry, &self.school.key, &self.rules, &groups)
                .map_err(|error| failure(label(page_number), error))?
            {
                Mapped::Person(person) => page.push(*person),
                Mapped::NotPerson(kind) => *not_persons.entry(kind).or_default() += 1,
            }
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
        let n_not_persons: u64 = not_persons.values().sum();
        sink.send_not_persons(not_persons).await?;
        tracing::info!(
            source = %self.source_name,
            groups = group_entries.len(),
            persons = total,
            not_persons = n_not_persons,
            "IServ directory read complete"
        );
        Ok(total)
    }
}

#[async_trait]
impl DirectoryConnector for IservLdap {
    async fn fetch_directory(&self, sink: &DirectorySink) -> Result<u64, FetchFailure> {
        tracing::info!(source = %self.source_name, server = %self.client.server(), "IServ directory read starting");
        let mut session = self.client.connect().await.map_err(|error| FetchFailure {
            page: None,
            cause: error.to_string(),
        })?;
        let result = self.run(&mut session, sink).await;
        session.close().await;
        if let Err(failure) = &result {
            tracing::warn!(source = %self.source_name, %failure, "IServ directory read failed");
        }
        result
    }
}
