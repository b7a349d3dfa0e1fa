//! Prometheus Remote Write 1.0, as its specification says: a protobuf `WriteRequest`
//! ([`proto`], encoded by `prost`) compressed with snappy's block format (`snap`), POSTed with
//! the required headers; labels sorted by name, the samples of one series in time order.
//! 5xx and 429 are retried with exponential backoff that honours `Retry-After`; any other 4xx
//! drops the batch ([`client`]). [`Shipper`] drains a persistent [`Queue`] in order, one
//! batch at a time, acknowledging a batch only once the receiver took it whole: the queue is
//! what makes it lose nothing across an outage of the receiver, the network or the sender.

pub mod backoff;
pub mod batch;
pub mod client;
pub mod proto;
pub mod settings;
pub mod shipper;

pub use batch::Batch;
pub use client::{Client, Endpoint, EndpointError, Outcome};
pub use settings::RemoteWriteSettings;
pub use shipper::{Queue, RemoteStats, Shipper, ShipperHandle};
