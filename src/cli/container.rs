//! The settings of Microsoft's Read container, so that `docker run ... Eula=accept Billing=...
//! ApiKey=...` scripts and Kubernetes manifests with the same environment names start vista unchanged.
//! Names match case-insensitively, with `:` or `__` between sections, as .NET configuration reads them.

use std::time::Duration;

use anyhow::{bail, Context, Result};

/// What the container settings set on vista.
#[derive(Debug, Default, PartialEq)]
pub struct ContainerSettings {
    /// `ApiKey`: one more accepted Azure key.
    pub api_key: Option<String>,
    /// `StorageTimeToLiveInMinutes`: how long Read results are kept.
    pub ttl: Option<Duration>,
    /// `Task:MaxRunningTimeSpanInMinutes`: how long one document may be read.
    pub max_running: Option<Duration>,
}

/// The container's setting names vista reads from the environment.
const ENVIRONMENT: [&str; 6] = [
    "Eula",
    "Billing",
    "ApiKey",
    "StorageTimeToLiveInMinutes",
    "Task__MaxRunningTimeSpanInMinutes",
    "Task:MaxRunningTimeSpanInMinutes",
];

fn minutes(name: &str, value: &str) -> Result<Duration> {
    let minutes: f64 = value
        .trim()
        .parse()
        .with_context(|| format!("{name}={value}: a number of minutes"))?;
    if !(minutes.is_finite() && minutes > 0.0) {
        bail!("{name}={value}: must be a positive number of minutes");
    }
    Ok(Duration::from_secs_f64(minutes * 60.0))
}

impl ContainerSettings {
    /// Reads `NAME=VALUE` arguments, then the environment's container names for those not given.
    pub fn read(
        arguments: &[String],
        environment: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for argument in arguments {
            let (name, value) = argument.split_once('=').with_context(|| {
                format!("'{argument}' is not a SETTING=VALUE container setting")
            })?;
            pairs.push((name.to_string(), value.to_string()));
        }
        for name in ENVIRONMENT {
            if let Some(value) = environment(name) {
                pairs.push((name.to_string(), value));
            }
        }
        let mut settings = ContainerSettings::default();
        for (name, value) in pairs {
            let key = name.replace("__", ":").to_ascii_lowercase();
            match key.as_str() {
                "eula" => tracing::info!(
                    "Eula={value}: vista has no licence to accept beyond its own (Apache-2.0)"
                ),
                "billing" => tracing::info!(
                    "Billing is ignored: vista meters nothing and no usage leaves this machine"
                ),
                "apikey" => settings.api_key = settings.api_key.or(Some(value)),
                "storagetimetoliveinminutes" => {
                    settings.ttl = settings.ttl.or(Some(minutes(&name, &value)?))
                }
                "task:maxrunningtimespaninminutes" => {
                    settings.max_running = settings.max_running.or(Some(minutes(&name, &value)?))
                }
                other if other.starts_with("logging:") || other.starts_with("mounts:") => {
                    tracing::info!(
                        "{name} is ignored: vista logs to stderr (VISTA_LOG sets the level)"
                    )
                }
                _ => tracing::warn!("{name}: not a container setting vista knows; ignored"),
            }
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_arguments_and_environment_map_to_vistas_settings() {
        let arguments = [
            "Eula=accept".to_string(),
            "Billing=https://example.cognitiveservices.azure.com".to_string(),
            "ApiKey=from-the-command-line".to_string(),
            "Logging:Console:LogLevel:Default=Information".to_string(),
        ];
        let environment = |name: &str| match name {
            "ApiKey" => Some("from-the-environment".to_string()),
            "StorageTimeToLiveInMinutes" => Some("90".to_string()),
            "Task__MaxRunningTimeSpanInMinutes" => Some("1.5".to_string()),
            _ => None,
        };
        let settings = ContainerSettings::read(&arguments, environment).unwrap();
        assert_eq!(
            settings,
            ContainerSettings {
                api_key: Some("from-the-command-line".into()),
                ttl: Some(Duration::from_secs(90 * 60)),
                max_running: Some(Duration::from_secs(90)),
            }
        );
        assert!(ContainerSettings::read(&["NoEquals".into()], |_| None).is_err());
        let bad = ["StorageTimeToLiveInMinutes=-1".to_string()];
        assert!(ContainerSettings::read(&bad, |_| None).is_err());
    }
}
