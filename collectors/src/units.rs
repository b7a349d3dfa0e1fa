//! Failed systemd units, from systemd's D-Bus API on the system bus (`ListUnitsFiltered
//! (["failed"])`, then each unit's `StateChangeTimestamp` and, where it has one, `Result`),
//! with zbus: pure Rust, on the daemon's tokio runtime. Where there is no system bus (no
//! systemd, a container, a user service that cannot see it) the section is `null`, said once
//! in the log, and the bus is tried again every [`RETRY`], not every sample.

use std::time::{Duration, Instant};

use broker::FailedUnit;
use zbus::{Connection, OwnedObjectPath, OwnedVariant};

/// One sample's D-Bus work at most (connecting included).
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// How long after a failure the bus is tried again.
pub const RETRY: Duration = Duration::from_secs(60);
/// Failed units reported at most (the rest are counted in the log).
pub const MAX_UNITS: usize = 64;
/// Longest unit name kept (systemd allows 255).
const MAX_NAME: usize = 255;

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";

/// `ListUnits`' row: name, description, load, active, sub, following, path, job id, job type,
/// job path.
type UnitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

#[derive(Debug, thiserror::Error)]
pub enum UnitsError {
    #[error("systemd's D-Bus API: {0}")]
    Bus(#[from] zbus::Error),
    #[error("systemd's D-Bus API did not answer within {0:?}")]
    Timeout(Duration),
}

/// The failed-units reader: its connection, and when the bus last failed.
#[derive(Debug, Default)]
pub struct UnitsReader {
    conn: Option<Connection>,
    failed_at: Option<Instant>,
    /// The failure was logged (once, until it recovers).
    said: bool,
    pub errors: u64,
}

impl UnitsReader {
    /// The failed units now; `None` while the bus is out of reach.
    pub async fn read(&mut self) -> Option<Vec<FailedUnit>> {
        if self.conn.is_none() && self.failed_at.is_some_and(|t| t.elapsed() < RETRY) {
            return None;
        }
        match tokio::time::timeout(TIMEOUT, self.try_read()).await {
            Ok(Ok(units)) => {
                if self.said {
                    tracing::info!("systemd's D-Bus API answers again: failed_units reported");
                }
                self.said = false;
                self.failed_at = None;
                Some(units)
            }
            Ok(Err(error)) => self.fail(error),
            Err(_) => self.fail(UnitsError::Timeout(TIMEOUT)),
        }
    }

    fn fail(&mut self, error: UnitsError) -> Option<Vec<FailedUnit>> {
        self.errors += 1;
        self.conn = None;
        self.failed_at = Some(Instant::now());
        if !self.said {
            self.said = true;
            tracing::warn!(%error, "failed systemd units are not reported (failed_units is null): no system bus or no systemd here; tried again every minute");
        }
        None
    }

    async fn try_read(&mut self) -> Result<Vec<FailedUnit>, UnitsError> {
        if self.conn.is_none() {
            self.conn = Some(Connection::system().await?);
        }
        let Some(conn) = &self.conn else {
            return Ok(Vec::new());
        };
        let reply = conn
            .call_method(
                Some(SYSTEMD),
                MANAGER_PATH,
                Some("org.freedesktop.systemd1.Manager"),
                "ListUnitsFiltered",
                &(vec!["failed"],),
            )
            .await?;
        let (rows,): (Vec<UnitRow>,) = reply.body().deserialize()?;
        let total = rows.len();
        let mut out = Vec::new();
        for row in rows.into_iter().take(MAX_UNITS) {
            let (name, path) = (row.0, row.6);
            if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
                continue;
            }
            let since_ms = property(
                conn,
                &path,
                "org.freedesktop.systemd1.Unit",
                "StateChangeTimestamp",
            )
            .await
            .and_then(|v| u64::try_from(v).ok())
            .filter(|us| *us > 0)
            .and_then(|us| i64::try_from(us / 1000).ok());
            let result = match name.rsplit_once('.').map(|(_, kind)| kind) {
                Some(
                    kind @ ("service" | "mount" | "socket" | "swap" | "timer" | "automount"
                    | "path" | "scope"),
                ) => {
                    let iface = format!("org.freedesktop.systemd1.{}", capitalized(kind));
                    property(conn, &path, &iface, "Result")
                        .await
                        .and_then(|v| String::try_from(v).ok())
                }
                _ => None,
            };
            out.push(FailedUnit {
                name,
                since_ms,
                result,
            });
        }
        if total > MAX_UNITS {
            tracing::debug!(total, kept = MAX_UNITS, "more failed units than reported");
        }
        Ok(out)
    }
}

fn capitalized(kind: &str) -> String {
    let mut c = kind.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// One property of one unit; `None` when it cannot be read.
async fn property(
    conn: &Connection,
    path: &OwnedObjectPath,
    iface: &str,
    name: &str,
) -> Option<OwnedVariant> {
    let reply = conn
        .call_method(
            Some(SYSTEMD),
            path.as_str(),
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &(iface, name),
        )
        .await
        .ok()?;
    reply.body().deserialize::<OwnedVariant>().ok()
}
