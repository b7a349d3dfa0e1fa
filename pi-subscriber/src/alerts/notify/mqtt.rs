//! `mqtt`: each alert's state, retained, on `<prefix>/<host>/alerts/<rule>[/<label>]` of the
//! Pi's own broker (`[mqtt]`), so any subscriber (Home Assistant, Node-RED, a phone app) sees
//! what fires now and what was resolved. One short connection per notice: alerts are rare.

use rumqttc::{AsyncClient, ConnectReturnCode, Event, Packet, QoS};

use super::Ctx;
use crate::alerts::engine::Notice;

/// The topic of a notice. Host ids and rule names are already topic-safe; a label (a mount
/// point such as `/srv`, a device) becomes one level: anything but `[A-Za-z0-9._-]` is `_`.
pub fn topic(prefix: &str, n: &Notice) -> String {
    let mut t = format!(
        "{}/{}/alerts/{}",
        prefix.trim_end_matches('/'),
        n.host,
        n.rule
    );
    if !n.label.is_empty() {
        t.push('/');
        t.extend(n.label.chars().take(64).map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        }));
    }
    t
}

pub async fn send(ctx: &Ctx<'_>, n: &Notice) -> Result<(), String> {
    let Some(mqtt) = ctx.mqtt else {
        return Err("the mqtt notifier needs [mqtt] enabled".into());
    };
    let mut settings = mqtt.clone();
    settings.client_id = format!("{}-alerts", settings.client_id);
    let options = crate::mqtt::options(&settings).map_err(|e| e.to_string())?;
    let (client, mut events) = AsyncClient::new(options, 4);
    let payload = serde_json::to_vec(n).map_err(|e| e.to_string())?;
    let topic = topic(&settings.topic_prefix, n);
    client
        .publish(&topic, QoS::AtLeastOnce, true, payload)
        .await
        .map_err(|e| format!("{topic}: {e}"))?;
    let acked = tokio::time::timeout(ctx.notifier.timeout, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(()),
                Ok(Event::Incoming(Packet::ConnAck(c))) if c.code != ConnectReturnCode::Success => {
                    return Err(format!("{topic}: broker refused: {:?}", c.code));
                }
                Ok(_) => {}
                Err(e) => return Err(format!("{topic}: {e}")),
            }
        }
    })
    .await
    .map_err(|_| format!("{topic}: no PUBACK within the timeout"))?;
    if acked.is_ok() {
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), events.poll()).await;
    }
    acked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::config::Severity;

    #[test]
    fn topics_keep_one_level_per_label() {
        let mut n = Notice {
            status: "firing".into(),
            host: "tower".into(),
            rule: "filesystem_used".into(),
            label: "/srv/my disk+#".into(),
            severity: Severity::Warning,
            value: None,
            threshold: None,
            since_ms: 0,
            ts_ms: 0,
            event: false,
            repeat: false,
            message: String::new(),
        };
        assert_eq!(
            topic("server-analytics/", &n),
            "server-analytics/tower/alerts/filesystem_used/_srv_my_disk__"
        );
        n.label.clear();
        assert_eq!(
            topic("server-analytics", &n),
            "server-analytics/tower/alerts/filesystem_used"
        );
    }
}
