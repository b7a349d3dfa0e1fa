//! The Raspberry Pi subscriber. Built out in its own issue; for now it proves that the wire
//! contract is usable without the embedded broker.

fn main() -> anyhow::Result<()> {
    println!(
        "pi-subscriber {}: not implemented yet; it will consume {} snapshots (schema v{})",
        env!("CARGO_PKG_VERSION"),
        broker::DEFAULT_PREFIX,
        broker::SNAPSHOT_VERSION
    );
    Ok(())
}
