//! Metrics backends for `serin check` and `serin replay`: like the controller's, but
//! `--prometheus` (the address the user can reach, e.g. a port-forward) replaces every
//! address, and Secrets come from what the loader read. The concrete Prometheus provider is
//! kept, because the hints use its labels API.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::analysis::prometheus::{Auth, PrometheusConfig, PrometheusProvider};
use crate::analysis::provider::{MetricProvider, ProviderError};
use crate::analysis::run::{Backend, Backends};

/// Prometheus-compatible backends for the command line.
pub struct CliBackends {
    override_address: Option<String>,
    secrets: BTreeMap<(String, String), BTreeMap<String, String>>,
    cache: Mutex<HashMap<String, Arc<PrometheusProvider>>>,
}

impl CliBackends {
    /// Backends sending every query to `override_address` when given, else to the address
    /// of the spec (`metricsServer`) or template; `secrets` by (namespace, name).
    pub fn new(
        override_address: Option<String>,
        secrets: BTreeMap<(String, String), BTreeMap<String, String>>,
    ) -> Self {
        Self { override_address, secrets, cache: Mutex::new(HashMap::new()) }
    }

    fn config(&self, backend: &Backend) -> Result<PrometheusConfig, ProviderError> {
        match backend {
            Backend::Default { address } => {
                let address = self.override_address.clone().or_else(|| address.clone()).ok_or_else(|| {
                    ProviderError::Config(
                        "no Prometheus: pass --prometheus URL (or set spec.metricsServer)".into(),
                    )
                })?;
                Ok(PrometheusConfig::new(address))
            }
            Backend::Template { namespace, provider } => {
                let auth = match &provider.secret_ref {
                    Some(secret) => match self.secrets.get(&(namespace.clone(), secret.name.clone())) {
                        Some(data) => Auth::from_secret_data(data)?,
                        None => None,
                    },
                    None => None,
                };
                let mut config =
                    PrometheusConfig::from_spec(provider, self.override_address.as_deref(), auth)?;
                if let Some(address) = &self.override_address {
                    config.address = address.clone();
                }
                Ok(config)
            }
        }
    }

    /// The Prometheus provider for `backend` (cached by its settings).
    pub fn prometheus(&self, backend: &Backend) -> Result<Arc<PrometheusProvider>, ProviderError> {
        let config = self.config(backend)?;
        // Credentials are redacted in Debug output; the Secret's name tells them apart.
        let secret = match backend {
            Backend::Template { namespace, provider } => {
                provider.secret_ref.as_ref().map(|s| format!("{namespace}/{}", s.name))
            }
            Backend::Default { .. } => None,
        };
        let key =
            format!("{}|{:?}|{}|{secret:?}", config.address, config.headers, config.insecure_skip_verify);
        let mut cache =
            self.cache.lock().map_err(|_| ProviderError::Config("backend cache poisoned".into()))?;
        if let Some(found) = cache.get(&key) {
            return Ok(found.clone());
        }
        let provider = Arc::new(PrometheusProvider::new(&config)?);
        cache.insert(key, provider.clone());
        Ok(provider)
    }
}

#[async_trait]
impl Backends for CliBackends {
    async fn provider(&self, backend: &Backend) -> Result<Arc<dyn MetricProvider>, ProviderError> {
        let provider: Arc<dyn MetricProvider> = self.prometheus(backend)?;
        Ok(provider)
    }
}
