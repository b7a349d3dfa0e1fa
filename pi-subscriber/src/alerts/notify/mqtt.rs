//! `mqtt`: each alert's state, retained, on `<prefix>/<host>/alerts/<rule>[/<label>]` of the
//! Pi's own broker (`[mqtt]`), so any subscriber (Home Assistant, Node-RED, a phone app) sees
//! what fires now and what was resolved. One short connection per notice: alerts are rare.

use daemon_kit::mqtt::{reason, Link, LinkStats};
use daemon_kit::stats::Stats;
use rumqttc::{AsyncClient, Event, Packet, QoS};

use super::Ctx;
use crate::alerts::engine::Notice;
use crate::sanitize::topic_level;

/// The topic of a notice. Host ids and rule names are already topic-safe; a label (a mount
/// point such as `/srv`, a device) becomes one level ([`topic_level`]): `sda` stays `sda`, a
/// label with anything but `[A-Za-z0-9_-]` gets `_` for it and a hash of the label, so
/// `/mnt/x y` and `/mnt/x_y` never share a topic.
pub fn topic(prefix: &str, n: &Notice) -> String {
    let mut t = format!(
        "{}/{}/alerts/{}",
        prefix.trim_end_matches('/'),
        n.host,
        n.rule
    );
    if !n.label.is_empty() {
        t.push('/');
        t.push_str(&topic_level(&n.label));
    }
    t
}

pub async fn send(ctx: &Ctx<'_>, n: &Notice) -> Result<(), String> {
    let Some(mqtt) = ctx.mqtt else {
        return Err("the mqtt notifier needs [mqtt] enabled".into());
    };
    let mut settings = mqtt.clone();
    settings.client_id = format!("{}-alerts", settings.client_id);
    let options = settings
        .client_options()
        .build()
        .map_err(|e| e.to_string())?;
    let (client, eventloop) = AsyncClient::new(options, 4);
    // The link's counters are this notice's alone: what `/health` shows of the notifier is
    // its sent/retried/failed counts.
    let mut link = Link::new(
        eventloop,
        Stats::<LinkStats>::default(),
        "alert MQTT broker",
    );
    let payload = serde_json::to_vec(n).map_err(|e| e.to_string())?;
    let topic = topic(&settings.topic_prefix, n);
    client
        .publish(&topic, QoS::AtLeastOnce, true, payload)
        .await
        .map_err(|e| format!("{topic}: {e}"))?;
    let acked = tokio::time::timeout(ctx.notifier.timeout, async {
        loop {
            match link.next().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(()),
                Ok(_) => {}
                // A refused login is an error here too (`Connection refused, return code: ..`).
                Err(e) => return Err(format!("{topic}: {}", reason(&e))),
            }
        }
    })
    .await
    .map_err(|_| format!("{topic}: no PUBACK within the timeout"))?;
    if acked.is_ok() {
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), link.next()).await;
    }
    acked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::config::Severity;

    fn notice(label: &str) -> Notice {
        Notice {
            status: "firing".into(),
            host: "tower".into(),
            rule: "filesystem_used".into(),
            label: label.into(),
            severity: Severity::Warning,
            value: None,
            threshold: None,
            since_ms: 0,
            ts_ms: 0,
            event: false,
            repeat: false,
            message: String::new(),
        }
    }

    #[test]
    fn topics_keep_one_level_per_label() {
        let hash = |s: &str| topic_level(s).rsplit("__").next().unwrap().to_owned();
        assert_eq!(
            topic("server-analytics/", &notice("/srv/my disk+#")),
            format!(
                "server-analytics/tower/alerts/filesystem_used/srv_my_disk__{}",
                hash("/srv/my disk+#")
            )
        );
        assert_eq!(
            topic("server-analytics", &notice("")),
            "server-analytics/tower/alerts/filesystem_used"
        );
        assert_eq!(
            topic("server-analytics", &notice("sda")),
            "server-analytics/tower/alerts/filesystem_used/sda"
        );
    }

    /// Issue 18 item 13: two labels that differ only in what a topic level cannot hold never
    /// share a topic (one alert's state would overwrite the other's).
    #[test]
    fn labels_that_differ_only_in_unsafe_characters_get_their_own_topics() {
        let labels = ["/mnt/x y", "/mnt/x_y", "/mnt/x+y", "/mnt/x/y", "mnt_x_y"];
        let mut topics: Vec<String> = labels
            .iter()
            .map(|l| topic("server-analytics", &notice(l)))
            .collect();
        for t in &topics {
            let level = t.rsplit('/').next().unwrap();
            assert!(
                level
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                "{t}"
            );
        }
        topics.sort();
        topics.dedup();
        assert_eq!(topics.len(), labels.len(), "{topics:?}");
    }
}
