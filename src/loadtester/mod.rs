//! `serin loadtester`.
