//! The data contract: symbols, intervals and bars (`market`), the wire format of the
//! messages (`record`), object keys (`key`) and the exchange's trading calendar
//! (`calendar`). Pure: no I/O, no actors.

pub mod calendar;
pub mod key;
pub mod market;
pub mod partition;
pub mod record;
