//! Recommendation logic over a catalog's index: what to ask the planner
//! and how to rank. Pure with respect to storage: reads one consistent
//! view of the index and returns hits.
//!
//! Must not: write anything, or know about HTTP.

pub mod copurchase;
pub mod popularity;
pub mod similar;
pub mod upsell;
