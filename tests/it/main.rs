//! Integration tests: a real server (in-process on 127.0.0.1:0, or the
//! real binary where a test kills it), a real RocksDB in a temp dir, real
//! HTTP, and the real fixtures in tests/data.

mod auth;
mod backup;
mod behaviour;
mod collaborative;
mod config;
mod crash;
mod disk;
mod engagement;
mod errors;
mod events;
mod experiments;
mod feedback;
mod fuzz;
mod learned;
mod limits;
mod load;
mod metrics;
mod openapi;
mod recall;
mod restart;
mod shoppers;
mod support;
mod tls;
mod upsell;
mod wire;
mod writes;
