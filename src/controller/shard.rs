//! Sharding (`--shard N/M`): several controller Deployments split the canaries between them.
//! A canary belongs to shard `fnv1a64("namespace/name") % M`. Hashing the canary's identity was
//! chosen over a namespace label: it spreads canaries evenly with no labelling to maintain, needs
//! no extra RBAC (Namespaces would have to be watched), and a canary never moves between
//! shards unless it is renamed. Each shard elects its own leader (Lease `serin-leader-N-of-M`).
//! FNV-1a is fixed by its definition, so every replica and version agrees on the split.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// One shard of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u32,
    /// How many shards there are.
    pub count: u32,
}

/// Why `--shard` could not be parsed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ShardError {
    /// Not `N/M`.
    #[error("expected N/M (e.g. 0/3), got {0:?}")]
    Format(String),
    /// `N >= M` or `M == 0`.
    #[error("shard {index} of {count} does not exist: N must be below M")]
    Range {
        /// N.
        index: u32,
        /// M.
        count: u32,
    },
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let format = || ShardError::Format(text.to_string());
        let (index, count) = text.split_once('/').ok_or_else(format)?;
        let index: u32 = index.trim().parse().map_err(|_| format())?;
        let count: u32 = count.trim().parse().map_err(|_| format())?;
        if count == 0 || index >= count {
            return Err(ShardError::Range { index, count });
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

impl Shard {
    /// Whether the canary `namespace/name` belongs to this shard.
    pub fn owns(&self, namespace: &str, name: &str) -> bool {
        let hash = fnv1a64(format!("{namespace}/{name}").as_bytes());
        hash % u64::from(self.count) == u64::from(self.index)
    }

    /// The name of this shard's leader Lease.
    pub fn lease_name(&self) -> String {
        format!("serin-leader-{}-of-{}", self.index, self.count)
    }
}

/// The leader Lease of a controller with or without a shard.
pub fn lease_name(shard: Option<Shard>) -> String {
    shard.map_or_else(|| "serin-leader".to_string(), |s| s.lease_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!("1/3".parse(), Ok(Shard { index: 1, count: 3 }));
        assert_eq!("3/3".parse::<Shard>(), Err(ShardError::Range { index: 3, count: 3 }));
        assert_eq!("0/0".parse::<Shard>(), Err(ShardError::Range { index: 0, count: 0 }));
        assert!(matches!("1-3".parse::<Shard>(), Err(ShardError::Format(_))));
        assert!(matches!("a/3".parse::<Shard>(), Err(ShardError::Format(_))));
        assert_eq!(Shard { index: 2, count: 5 }.to_string(), "2/5");
    }

    #[test]
    fn fnv1a_matches_its_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn every_canary_has_exactly_one_shard_and_the_split_is_even() {
        let count = 3;
        let shards: Vec<Shard> = (0..count).map(|index| Shard { index, count }).collect();
        let mut per_shard = vec![0usize; count as usize];
        for i in 0..3000 {
            let (namespace, name) = (format!("team-{}", i % 37), format!("app-{i}"));
            let owners: Vec<&Shard> = shards.iter().filter(|s| s.owns(&namespace, &name)).collect();
            assert_eq!(owners.len(), 1, "{namespace}/{name}");
            per_shard[owners[0].index as usize] += 1;
        }
        for n in per_shard {
            assert!((800..1200).contains(&n), "uneven split: {n} of 3000");
        }
    }

    #[test]
    fn one_shard_owns_everything_and_leases_differ() {
        let all = Shard { index: 0, count: 1 };
        assert!(all.owns("a", "b") && all.owns("c", "d"));
        assert_eq!(lease_name(None), "serin-leader");
        assert_eq!(lease_name(Some(Shard { index: 1, count: 3 })), "serin-leader-1-of-3");
    }
}
