//! Turns a configured source into a running connector.

use std::sync::Arc;

use bestand_connectors::file::FileSource;
use bestand_connectors::intune::Intune;
use bestand_connectors::jamf_pro::JamfPro;
use bestand_connectors::jamf_school::JamfSchool;
use bestand_connectors::relution::Relution;
use bestand_connectors::Connector;

use crate::config::{SourceConfig, SourceSettings};

/// Builds the connector for `source`: checks settings and reads secrets, makes no request.
pub fn build_connector(source: &SourceConfig) -> anyhow::Result<Arc<dyn Connector>> {
    match source.settings() {
        SourceSettings::JamfPro(settings) => {
            let connector = JamfPro::new(settings.clone(), source.name())
                .map_err(|error| anyhow::anyhow!("source '{}': {error}", source.name()))?;
            Ok(Arc::new(connector))
        }
        SourceSettings::Intune(settings) => {
            let connector = Intune::new(settings.clone(), source.name())
                .map_err(|error| anyhow::anyhow!("source '{}': {error}", source.name()))?;
            Ok(Arc::new(connector))
        }
        SourceSettings::Relution(settings) => {
            let connector = Relution::new(settings.clone(), source.name())
                .map_err(|error| anyhow::anyhow!("source '{}': {error}", source.name()))?;
            Ok(Arc::new(connector))
        }
        SourceSettings::JamfSchool(settings) => {
            let connector = JamfSchool::new(settings.clone(), source.name())
                .map_err(|error| anyhow::anyhow!("source '{}': {error}", source.name()))?;
            Ok(Arc::new(connector))
        }
        SourceSettings::File(settings) => {
            let connector = FileSource::new(settings.clone(), source.name())
                .map_err(|error| anyhow::anyhow!("source '{}': {error}", source.name()))?;
            Ok(Arc::new(connector))
        }
    }
}
