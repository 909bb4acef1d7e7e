//! Metric backends for the analysis: the global Prometheus (`--metrics-server` or
//! `spec.metricsServer`) and each MetricTemplate's own, with credentials from its Secret.
//! Providers are cached by their settings, so a tick does not rebuild HTTP clients.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::secrets::secret_strings;
use super::stores::Stores;
use crate::analysis::prometheus::{Auth, PrometheusConfig, PrometheusProvider};
use crate::analysis::provider::{MetricProvider, ProviderError};
use crate::analysis::run::{Backend, Backends};

/// Prometheus-compatible backends, cached.
pub struct PrometheusBackends {
    stores: Stores,
    default_address: Option<String>,
    cache: Mutex<HashMap<String, Arc<dyn MetricProvider>>>,
}

impl PrometheusBackends {
    /// Backends reading Secrets from `stores`; `default_address` is `--metrics-server`.
    pub fn new(stores: Stores, default_address: Option<String>) -> Self {
        Self { stores, default_address, cache: Mutex::new(HashMap::new()) }
    }

    fn config(&self, backend: &Backend) -> Result<(PrometheusConfig, String), ProviderError> {
        match backend {
            Backend::Default { address } => {
                let address = address.clone().or_else(|| self.default_address.clone()).ok_or_else(|| {
                    ProviderError::Config(
                        "no metrics server: set --metrics-server or spec.metricsServer".into(),
                    )
                })?;
                Ok((PrometheusConfig::new(address.clone()), address))
            }
            Backend::Template { namespace, provider } => {
                let (auth, secret_version) = match &provider.secret_ref {
                    Some(secret) => {
                        let data = secret_strings(&self.stores, namespace, &secret.name)
                            .map_err(|e| ProviderError::Config(e.to_string()))?;
                        let version = self
                            .stores
                            .secret(namespace, &secret.name)
                            .and_then(|s| s.metadata.resource_version.clone())
                            .unwrap_or_default();
                        (Auth::from_secret_data(&data)?, version)
                    }
                    None => (None, String::new()),
                };
                let config = PrometheusConfig::from_spec(provider, self.default_address.as_deref(), auth)?;
                let key = format!(
                    "{}|{:?}|{}|{secret_version}",
                    config.address, config.headers, config.insecure_skip_verify
                );
                Ok((config, key))
            }
        }
    }
}

#[async_trait]
impl Backends for PrometheusBackends {
    async fn provider(&self, backend: &Backend) -> Result<Arc<dyn MetricProvider>, ProviderError> {
        let (config, key) = self.config(backend)?;
        if let Some(cached) =
            self.cache.lock().map_err(|_| ProviderError::Config("backend cache poisoned".into()))?.get(&key)
        {
            return Ok(cached.clone());
        }
        let provider: Arc<dyn MetricProvider> = Arc::new(PrometheusProvider::new(&config)?);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, provider.clone());
        }
        Ok(provider)
    }
}
