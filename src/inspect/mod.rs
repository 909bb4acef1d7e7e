//! `serin check` and `serin replay`: a Canary's metric analysis run by hand, against
//! Prometheus, with the controller's own code (`analysis::run`). `check` runs every metric now
//! and explains empty results; `replay` re-evaluates a past window tick by tick and says where
//! the canary would have been promoted or rolled back.
//!
//! Pure parts — the selector scanner and hints (`hint`), the tables and exit codes (`table`),
//! the decision model (`decision`), time parsing (`replay`) — are unit tested; the rest is
//! tested against a real Prometheus (`tests/integration/check_replay.rs`).

pub mod backends;
pub mod check;
pub mod decision;
pub mod hint;
pub mod replay;
pub mod source;
pub mod table;
