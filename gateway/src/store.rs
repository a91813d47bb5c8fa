//! The store: one module per group of tables, and the only place whose SQL names them.
//!
//! Each module holds its tables' rows, their typed statuses and the statements that read and
//! move them (every status change a compare-and-set). The stages above (ingest, routing,
//! dispatch, fulfilment, tracking, after-sales, clocks, polling) decide; the store reads and
//! writes. A store module imports only the foundation (`db`, `error`, `config`, `money`) and
//! other store modules; `tests/architecture.rs` fails the build when SQL naming a table is
//! found outside the module that owns it.
//!
//! Every function takes the connection or transaction it runs on, so that a stage can apply
//! many orders in one transaction.

pub mod bare;
pub mod cases;
pub mod connections;
pub mod decisions;
pub mod holds;
pub mod jobs;
pub mod offers;
pub mod orders;
pub mod plugins;
pub mod policies;
pub mod poll_state;
pub mod raw_requests;
pub mod shadow;
pub mod shipments;
pub mod supplier_orders;
pub mod tasks;
