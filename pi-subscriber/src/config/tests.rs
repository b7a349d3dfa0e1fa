//! The Pi's settings: defaults, layering, validation and what check-config prints.
use super::*;

fn load(text: &str, o: Overrides) -> Result<Settings, SettingsError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, text).unwrap();
    Settings::load(Some(&path), &o)
}

#[test]
fn defaults_point_at_one_machine() {
    let s = load("", Overrides::default()).unwrap();
    assert_eq!(s.http.bind.to_string(), "127.0.0.1:9100");
    assert_eq!((s.mqtt.host.as_str(), s.mqtt.port), ("127.0.0.1", 1883));
    assert_eq!(s.poll.endpoints, ["http://127.0.0.1:9000/latest"]);
    assert_eq!(s.health.max_age, None, "derived per host from its interval");
    assert!(s.mqtt.client_id.starts_with("pi-subscriber-"));
    assert_eq!(s.history.max_disk, 2 << 30);
    assert_eq!(s.history.max_samples_per_s, 10);
    let s = load(
        "[history]\nmax_disk = \"500MB\"\nmax_samples_per_s = 50\n",
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        (s.history.max_disk, s.history.max_samples_per_s),
        (500_000_000, 50)
    );
}

#[test]
fn the_seeds_flags_work() {
    let s = load(
        "",
        Overrides {
            bind: Some("0.0.0.0".into()),
            port: Some(9200),
            metrics_endpoint: Some("http://10.8.0.1:9000/latest".into()),
            poll_interval: Some("30".into()),
            timeout: Some("3".into()),
            max_age: Some("90".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(s.http.bind.to_string(), "0.0.0.0:9200");
    assert_eq!(s.poll.endpoints, ["http://10.8.0.1:9000/latest"]);
    assert_eq!(s.poll.interval, Duration::from_secs(30));
    assert_eq!(s.poll.timeout, Duration::from_secs(3));
    assert_eq!(s.health.max_age, Some(Duration::from_secs(90)));
}

#[test]
fn bad_keys_and_values_are_named() {
    let e = |t: &str| load(t, Overrides::default()).unwrap_err().to_string();
    assert!(e("[mqtt]\nhots = \"x\"\n").contains("hots"));
    assert!(e("[poll]\nendpoints = [\"ftp://x\"]\n").contains("poll.endpoints"));
    assert!(e("[history]\ncapacity = 1\n").contains("history.capacity"));
    assert!(e("[health]\nmax_age = \"soon\"\n").contains("health.max_age"));
    assert!(e("[mqtt]\nport = 99999\n").contains("port"));
    assert!(e("[history]\nforget_after = \"0s\"\n").contains("history.forget_after"));
    assert!(e("[history]\nraw = \"1h\"\n").contains("history.raw"));
    assert!(e("[history]\nraw = \"367d\"\nminute = \"400d\"\n").contains("at most 366d"));
    assert!(e("[history]\nhour = \"1d\"\n").contains("history.hour"));
    assert!(e("[http]\nadmin_token = \"short\"\n").contains("http.admin_token"));
    assert!(e("[history]\nmax_disk = \"1MiB\"\n").contains("history.max_disk"));
    assert!(e("[history]\nmax_disk = \"lots\"\n").contains("max_disk"));
    assert!(e("[history]\nmax_samples_per_s = 0\n").contains("history.max_samples_per_s"));
    assert!(e("[mqtt]\nmax_packet_size = 1000\n").contains("mqtt.max_packet_size"));
    assert!(e("[mqtt]\nmax_packet_size = 268435456\n").contains("mqtt.max_packet_size"));
    let bad_bind = load(
        "",
        Overrides {
            bind: Some("everywhere".into()),
            ..Overrides::default()
        },
    );
    assert!(bad_bind.unwrap_err().to_string().contains("http.bind"));
}

#[test]
fn an_unknown_key_or_a_bad_value_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pi-subscriber.toml");
    let error = |text: &str| {
        std::fs::write(&path, text).unwrap();
        Settings::load(Some(&path), &Overrides::default())
            .unwrap_err()
            .to_string()
    };
    let file = path.display();
    let e = error("[mqtt]\nhots = \"x\"\n");
    assert!(
        e.starts_with(&format!(
            "configuration: unknown key `mqtt.hots` in {file}, expected one of `enabled`, `host`, "
        )),
        "{e}"
    );
    let e = error("[mqtt]\nport = 99999\n");
    assert!(e.contains("`mqtt.port`"), "{e}");
    assert!(e.ends_with(&format!(" in {file}")), "{e}");
}

#[test]
fn the_shipped_example_config_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/pi-subscriber.toml");
    let s = Settings::load(Some(&example), &Overrides::default()).unwrap();
    assert_eq!(s.mqtt.host, "10.8.0.1");
    assert!(s.to_toml().contains("<redacted>"));
}

#[test]
fn every_builtin_rule_the_registry_names_has_levels_in_the_config() {
    let b = crate::config::alerts::Builtin::default();
    let named: Vec<&str> = crate::registry::METRICS
        .iter()
        .filter_map(|m| m.alert)
        .collect();
    assert_eq!(
        named,
        [
            "memory_used",
            "cpu_temp",
            "filesystem_used",
            "under_voltage",
            "unit_failed"
        ]
    );
    for name in named {
        assert!(b.levels(name).is_some(), "[alerts.builtin.{name}]");
    }
}

#[test]
fn the_commit_interval_defaults_to_five_minutes_within_a_second_and_an_hour() {
    let s = load("", Overrides::default()).unwrap();
    assert_eq!(s.history.commit_interval, Duration::from_secs(300));
    let s = load(
        "[history]\ncommit_interval = \"10s\"\n",
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(s.history.commit_interval, Duration::from_secs(10));
    let e = |t: &str| load(t, Overrides::default()).unwrap_err().to_string();
    for bad in ["0s", "500ms", "2h"] {
        let msg = e(&format!("[history]\ncommit_interval = \"{bad}\"\n"));
        assert!(msg.contains("history.commit_interval"), "{bad}: {msg}");
    }
}
