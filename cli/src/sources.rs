//! Turns a configured source into running connectors, and runs one sync of a source: the
//! directory read for school servers, the device sync for MDMs (a UCS@school source does both).

use std::sync::Arc;
use std::time::Instant;

use bestand_connectors::file::FileSource;
use bestand_connectors::intune::Intune;
use bestand_connectors::iserv_ldap::IservLdap;
use bestand_connectors::jamf_pro::JamfPro;
use bestand_connectors::jamf_school::JamfSchool;
use bestand_connectors::kelvin::Kelvin;
use bestand_connectors::relution::Relution;
use bestand_connectors::ucs_ldap::UcsLdap;
use bestand_connectors::{
    spawn_directory_fetch, spawn_fetch_with_capacity, Connector, DirectoryConnector,
};
use bestand_core::store::SourceRef;
use bestand_core::sync::{self, DirectorySyncOptions, SyncOptions, SyncProgress, SyncReport};
use bestand_core::{Actor, Scope};
use sqlx::PgPool;

use crate::app::{self, SystemClock};
use crate::config::{Config, SourceConfig, SourceSettings};

/// What a source can deliver: devices, persons, or both.
#[derive(Clone, Default)]
pub struct SourceConnectors {
    pub devices: Option<Arc<dyn Connector>>,
    pub directory: Option<Arc<dyn DirectoryConnector>>,
}

fn devices_only(connector: Arc<dyn Connector>) -> SourceConnectors {
    SourceConnectors {
        devices: Some(connector),
        directory: None,
    }
}

/// Builds the connectors of `source`: checks settings and reads secrets, makes no request.
pub fn build_connectors(source: &SourceConfig) -> anyhow::Result<SourceConnectors> {
    let named =
        |error: &dyn std::fmt::Display| anyhow::anyhow!("source '{}': {error}", source.name());
    Ok(match source.settings() {
        SourceSettings::JamfPro(settings) => devices_only(Arc::new(
            JamfPro::new(settings.clone(), source.name()).map_err(|e| named(&e))?,
        )),
        SourceSettings::Intune(settings) => devices_only(Arc::new(
            Intune::new(settings.clone(), source.name()).map_err(|e| named(&e))?,
        )),
        SourceSettings::Relution(settings) => devices_only(Arc::new(
            Relution::new(settings.clone(), source.name()).map_err(|e| named(&e))?,
        )),
        SourceSettings::JamfSchool(settings) => devices_only(Arc::new(
            JamfSchool::new(settings.clone(), source.name()).map_err(|e| named(&e))?,
        )),
        SourceSettings::Kelvin(settings) => SourceConnectors {
            devices: None,
            directory: Some(Arc::new(
                Kelvin::new(settings.clone(), source.name()).map_err(|e| named(&e))?,
            )),
        },
        SourceSettings::UcsLdap(settings) => {
            // One connector serves both roles; it opens its own LDAP session per read.
            let connector =
                Arc::new(UcsLdap::new(settings.clone(), source.name()).map_err(|e| named(&e))?);
            SourceConnectors {
                devices: Some(connector.clone()),
                directory: Some(connector),
            }
        }
        SourceSettings::IservLdap(settings) => SourceConnectors {
            devices: None,
            directory: Some(Arc::new(
                IservLdap::new(settings.as_ref().clone(), source.name()).map_err(|e| named(&e))?,
            )),
        },
        SourceSettings::File(settings) => devices_only(Arc::new(
            FileSource::new(settings.clone(), source.name()).map_err(|e| named(&e))?,
        )),
    })
}

/// The device connector of `source`; an error for sources that deliver no devices.
pub fn build_connector(source: &SourceConfig) -> anyhow::Result<Arc<dyn Connector>> {
    build_connectors(source)?.devices.ok_or_else(|| {
        anyhow::anyhow!(
            "source '{}' (kind {}) delivers no devices",
            source.name(),
            source.common.kind
        )
    })
}

/// Runs one sync of `source`: first the directory read (so that the device sync's assignments
/// see today's persons), then the devices. A failed directory read does not stop the device
/// sync; each is its own run with its own report, returned with its duration in seconds.
pub async fn sync_source(
    pool: &PgPool,
    config: &Config,
    source: &SourceConfig,
    source_ref: &SourceRef,
    dry_run: bool,
    progress: &dyn SyncProgress,
) -> anyhow::Result<Vec<(SyncReport, f64)>> {
    let connectors = build_connectors(source)?;
    let guard = app::guard_for(config, source);
    // Whoever starts it (a person, the scheduler, the demo), the runs are the source's own, and
    // the configuration file reaches every authority.
    let scope = Scope::All;
    let actor = Actor::Sync {
        source: source.name().to_string(),
    };
    let mut reports = Vec::new();
    // Both runs resolve the source's school keys through it (`school_map`, docs/sync.md).
    let school_map: std::collections::HashMap<String, String> =
        source.common.school_map.clone().into_iter().collect();
    if let Some(directory) = connectors.directory {
        let options = DirectorySyncOptions {
            dry_run,
            guard,
            school_map: school_map.clone(),
        };
        let started = Instant::now();
        let fetch = || spawn_directory_fetch(directory.clone());
        let report = sync::run_directory_sync_retrying(
            pool,
            &SystemClock,
            &scope,
            &actor,
            source_ref,
            fetch,
            &options,
            progress,
        )
        .await?;
        reports.push((report, started.elapsed().as_secs_f64()));
    }
    if let Some(devices) = connectors.devices {
        let options = SyncOptions {
            dry_run,
            guard,
            field_priority: sync::merge::FieldPriority(config.sync.field_priority.clone()),
            school_map,
        };
        let capacity = config
            .sync
            .page_channel_capacity
            .unwrap_or(sync::PAGE_CHANNEL_CAPACITY);
        let started = Instant::now();
        let fetch = || spawn_fetch_with_capacity(devices.clone(), capacity);
        let report = sync::run_sync_retrying(
            pool,
            &SystemClock,
            &scope,
            &actor,
            source_ref,
            fetch,
            &options,
            progress,
        )
        .await?;
        reports.push((report, started.elapsed().as_secs_f64()));
    }
    Ok(reports)
}
