//! Reading Secret values from the cache for credentials: webhook headers, metric backend auth,
//! alert addresses, Git credentials. Values never go into logs or errors.

use std::collections::BTreeMap;

use thiserror::Error;

use super::stores::Stores;

/// A referenced Secret is missing.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("secret {namespace}/{name} not found")]
pub struct MissingSecret {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// The Secret's data as UTF-8 strings (non-UTF-8 values are skipped).
pub fn secret_strings(
    stores: &Stores,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, MissingSecret> {
    let secret = stores
        .secret(namespace, name)
        .ok_or_else(|| MissingSecret { namespace: namespace.to_string(), name: name.to_string() })?;
    Ok(secret
        .data
        .iter()
        .flatten()
        .filter_map(|(k, v)| String::from_utf8(v.0.clone()).ok().map(|s| (k.clone(), s)))
        .collect())
}
