//! What people give the gateway through its admin API, parsed and checked without a database or
//! a plugin: offers (a JSON body or a CSV file), policy documents, amounts of money. The gateway
//! (`daifa`) stores what passes; the fuzz targets (`tests/fuzz`) feed these functions any bytes.

pub mod money;
pub mod offer;
pub mod policy;
