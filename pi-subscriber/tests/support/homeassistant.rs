//! A real Home Assistant for the tests: `target/ha-venv` (made by
//! `scripts/homeassistant-venv.sh`), a config dir in a tempdir, `hass --skip-pip` on a free
//! loopback port, a user onboarded over the REST API and the MQTT integration added through a
//! config flow to a given broker. Missing venv: a panic saying how to make it (the tests fail,
//! they do not skip).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long `hass` may take to answer (it starts in ~2 s here; a loaded CI machine is slower).
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a clean stop (SIGTERM) may take (~3 s here).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const USERNAME: &str = "test";
const PASSWORD: &str = "test-password-1";

/// A running Home Assistant; killed (and its config dir removed) when dropped.
pub struct HomeAssistant {
    child: Option<Child>,
    dir: tempfile::TempDir,
    hass: PathBuf,
    pub port: u16,
    pub base: String,
    /// How long the first start took, from spawning `hass` to the MQTT entry loaded.
    pub started_in: Duration,
    http: reqwest::blocking::Client,
    access_token: Mutex<String>,
    refresh_token: String,
}

/// The venv with `hass`: `$HOMEASSISTANT_VENV`, else the workspace's `target/ha-venv`.
pub fn venv() -> PathBuf {
    match std::env::var_os("HOMEASSISTANT_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ha-venv"),
    }
}

fn configuration(port: u16) -> String {
    format!(
        "homeassistant:\n  name: Server Analytics test\n  latitude: 52.37\n  longitude: 4.89\n  \
         elevation: 0\n  unit_system: metric\n  time_zone: UTC\n  country: NL\n  currency: EUR\n\
         http:\n  server_host: 127.0.0.1\n  server_port: {port}\n\
         api:\nconfig:\nonboarding:\nmqtt:\n"
    )
}

impl HomeAssistant {
    /// Starts Home Assistant with the MQTT integration connected to `127.0.0.1:broker_port`.
    /// Panics when the venv is missing; `Err` (with the tail of HA's log) when HA does not
    /// come up or refuses a step.
    pub fn start(broker_port: u16) -> Result<HomeAssistant, String> {
        let hass = venv().join("bin/hass");
        assert!(
            hass.exists(),
            "Home Assistant is not installed: no {}. Run scripts/homeassistant-venv.sh (needs \
             python3 >= 3.11 and PyPI; ~1.5 minutes once; scripts/test.sh runs it)",
            hass.display()
        );
        let began = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("homeassistant-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let port = crate::common::free_port();
        std::fs::write(dir.path().join("configuration.yaml"), configuration(port))
            .map_err(|e| format!("configuration.yaml: {e}"))?;
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let mut ha = HomeAssistant {
            child: None,
            dir,
            hass,
            port,
            base: format!("http://127.0.0.1:{port}"),
            started_in: Duration::ZERO,
            http,
            access_token: Mutex::new(String::new()),
            refresh_token: String::new(),
        };
        ha.spawn()?;
        ha.wait_until(|ha| {
            ha.send("GET", "/api/onboarding", None)
                .is_ok_and(|r| r.0 == 200)
        })?;
        ha.onboard()?;
        ha.wait_running()?;
        ha.add_mqtt(broker_port)?;
        ha.started_in = began.elapsed();
        eprintln!(
            "[homeassistant] up on {} with MQTT on {broker_port} in {:?}",
            ha.base, ha.started_in
        );
        Ok(ha)
    }

    pub fn config_dir(&self) -> &Path {
        self.dir.path()
    }

    fn client_id(&self) -> String {
        format!("{}/", self.base)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let out = std::fs::File::create(self.dir.path().join("hass.out"))
            .map_err(|e| format!("hass.out: {e}"))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&self.hass)
            .arg("-c")
            .arg(self.dir.path())
            .arg("--skip-pip")
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.hass.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// The last lines of HA's output and log (no DEBUG lines), for error messages.
    pub fn log_tail(&self) -> String {
        let mut tail = String::new();
        for name in ["hass.out", "home-assistant.log"] {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| !l.contains(" DEBUG ")).collect();
            let from = lines.len().saturating_sub(40);
            tail.push_str(&format!("--- {name}\n{}\n", lines[from..].join("\n")));
        }
        tail
    }

    /// The ERROR and CRITICAL lines of HA's log, this start's and the previous one's (a
    /// missing package in the venv shows here as "Setup failed for ...").
    pub fn log_errors(&self) -> Vec<String> {
        ["home-assistant.log.1", "home-assistant.log"]
            .iter()
            .filter_map(|name| std::fs::read_to_string(self.dir.path().join(name)).ok())
            .flat_map(|text| {
                text.lines()
                    .filter(|l| l.contains(" ERROR (") || l.contains(" CRITICAL ("))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Polls `ready` every 100 ms until it holds; `Err` if `hass` exits or takes too long.
    fn wait_until(&mut self, ready: impl Fn(&HomeAssistant) -> bool) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ready(self) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("hass exited ({status})\n{}", self.log_tail()));
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "hass did not answer on {} within {START_TIMEOUT:?}\n{}",
                    self.base,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Until `/api/config` says `"state": "RUNNING"` (every integration set up).
    fn wait_running(&mut self) -> Result<(), String> {
        self.wait_until(|ha| {
            ha.send("GET", "/api/config", None)
                .ok()
                .and_then(|(status, body)| (status == 200).then_some(body))
                .and_then(|body| serde_json::from_str::<Value>(&body).ok())
                .is_some_and(|config| config["state"] == "RUNNING")
        })
    }

    /// The onboarding user step, then the authorization code traded for tokens. (The other
    /// onboarding steps are not needed for the REST API, and `core_config` would start flows
    /// for integrations this venv has no packages for.)
    fn onboard(&mut self) -> Result<(), String> {
        let body = json!({
            "client_id": self.client_id(), "name": "Test", "username": USERNAME,
            "password": PASSWORD, "language": "en",
        });
        let (status, text) = self.send("POST", "/api/onboarding/users", Some(body))?;
        let user: Value = parse(status, &text, "/api/onboarding/users")?;
        let code = user["auth_code"]
            .as_str()
            .ok_or(format!("no auth_code: {text}"))?;
        let tokens = self.token(&[("grant_type", "authorization_code"), ("code", code)])?;
        self.refresh_token = tokens["refresh_token"]
            .as_str()
            .ok_or(format!("no refresh_token: {tokens}"))?
            .to_owned();
        Ok(())
    }

    /// `POST /auth/token` (form), keeping the new access token.
    fn token(&self, form: &[(&str, &str)]) -> Result<Value, String> {
        let client_id = self.client_id();
        let mut form = form.to_vec();
        form.push(("client_id", &client_id));
        let response = self
            .http
            .post(format!("{}/auth/token", self.base))
            .form(&form)
            .send()
            .map_err(|e| format!("/auth/token: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        let tokens: Value = parse(status, &text, "/auth/token")?;
        let access = tokens["access_token"]
            .as_str()
            .ok_or(format!("no access_token: {text}"))?;
        *self.access_token.lock().unwrap() = access.to_owned();
        Ok(tokens)
    }

    /// The MQTT integration through its config flow: `{"handler": "mqtt"}` answers the form
    /// of step `broker` (broker, port, username, password); the broker and port create the
    /// entry.
    fn add_mqtt(&self, broker_port: u16) -> Result<(), String> {
        let path = "/api/config/config_entries/flow";
        let (status, text) = self.send("POST", path, Some(json!({"handler": "mqtt"})))?;
        let form: Value = parse(status, &text, path)?;
        if form["step_id"] != "broker" {
            return Err(format!("mqtt flow: expected step broker, got {text}"));
        }
        let flow = form["flow_id"]
            .as_str()
            .ok_or(format!("no flow_id: {text}"))?;
        let path = format!("{path}/{flow}");
        let body = json!({"broker": "127.0.0.1", "port": broker_port});
        let (status, text) = self.send("POST", &path, Some(body))?;
        let entry: Value = parse(status, &text, &path)?;
        if entry["type"] != "create_entry" || entry["result"]["state"] != "loaded" {
            return Err(format!("mqtt flow did not create a loaded entry: {text}"));
        }
        Ok(())
    }

    /// One request with the access token; on 401, the token is refreshed once.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, String), String> {
        let once = |token: &str| -> Result<(u16, String), String> {
            let url = format!("{}{path}", self.base);
            let mut request = match method {
                "GET" => self.http.get(url),
                "POST" => self.http.post(url),
                "DELETE" => self.http.delete(url),
                other => return Err(format!("method {other}")),
            };
            if !token.is_empty() {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request
                .send()
                .map_err(|e| format!("{method} {path}: {e}"))?;
            let status = response.status().as_u16();
            Ok((status, response.text().unwrap_or_default()))
        };
        let token = self.access_token.lock().unwrap().clone();
        let answer = once(&token)?;
        if answer.0 != 401 || self.refresh_token.is_empty() {
            return Ok(answer);
        }
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &self.refresh_token),
        ])?;
        let token = self.access_token.lock().unwrap().clone();
        once(&token)
    }

    /// `GET /api/states`: every entity's state object.
    pub fn states(&self) -> Value {
        let (status, text) = self.send("GET", "/api/states", None).unwrap();
        parse(status, &text, "/api/states").unwrap()
    }

    /// `GET /api/states/<entity_id>`; `None` when HA does not know the entity (404).
    pub fn state(&self, entity_id: &str) -> Option<Value> {
        let path = format!("/api/states/{entity_id}");
        let (status, text) = self.send("GET", &path, None).unwrap();
        if status == 404 {
            return None;
        }
        Some(parse(status, &text, &path).unwrap())
    }

    /// Polls `/api/states` every 100 ms until `pred` accepts it; panics after `timeout`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let states = self.states();
            if pred(&states) {
                return states;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?}: {states}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls one entity every 100 ms until `pred` accepts it (`None`: unknown to HA); panics
    /// after `timeout` with its last state.
    pub fn wait_state(
        &self,
        entity_id: &str,
        timeout: Duration,
        pred: impl Fn(Option<&Value>) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.state(entity_id);
            if pred(state.as_ref()) {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "{entity_id}: timed out after {timeout:?}, last {state:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM and a clean exit; `Err` if HA takes longer than 30 s or exits with an error.
    pub fn stop(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("hass stopped with {status}\n{}", self.log_tail()))
                };
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("hass did not stop within {STOP_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts HA again on the same config dir and port (the user, tokens and the MQTT entry
    /// are in `.storage`), until it is RUNNING. Its MQTT entities come back when the broker
    /// redelivers the retained discovery configs.
    pub fn start_again(&mut self) -> Result<(), String> {
        self.spawn()?;
        self.wait_running()
    }

    /// `stop` then `start_again`.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop()?;
        self.start_again()
    }
}

fn parse(status: u16, text: &str, what: &str) -> Result<Value, String> {
    if !(200..300).contains(&status) {
        return Err(format!("{what}: HTTP {status}: {text}"));
    }
    serde_json::from_str(text).map_err(|e| format!("{what}: {e}: {text}"))
}

impl Drop for HomeAssistant {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("[homeassistant] {}", self.log_tail());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
