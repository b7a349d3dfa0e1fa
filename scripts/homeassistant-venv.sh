#!/usr/bin/env bash
# Installs a real Home Assistant into target/ha-venv for the tests (pi-subscriber/tests/
# homeassistant.rs). Idempotent: a stamp file naming exactly what was installed makes a second
# run a no-op. Needs python3 (>= 3.11) with venv, and PyPI. No root.
#
# Home Assistant runs with --skip-pip in the tests, so this installs up front what the
# integrations it loads need: its own default set (frontend is critical: without it HA starts in
# recovery mode), http/api/onboarding/auth/config, and mqtt with its sensor platforms. Versions
# come from HA's own package_constraints.txt (shipped inside the wheel); josepy is pinned because
# josepy 2 breaks acme (pulled in by hass-nabucasa), and then every HTTP request fails.
set -euo pipefail
cd "$(dirname "$0")/.."

HA_VERSION=2024.3.3
venv=target/ha-venv
python=${HA_PYTHON:-python3}
# The requirements of the integrations HA loads here (their manifest.json "requirements",
# followed through "dependencies"): backup, file_upload, frontend, hardware, http, image_upload,
# mqtt, network; recorder's (analytics, a dependency of onboarding, imports it) and numpy
# (camera, set up by the MQTT entry, imports stream). Versions are the ones HA 2024.3.3 pins;
# the smoke test fails on any ERROR line in HA's log, so a missing one shows.
extra=(
  josepy==1.14.0
  securetar==2024.2.1
  janus==1.0.0
  home-assistant-frontend==20240307.0
  psutil-home-assistant==0.0.1
  aiohttp_cors==0.7.0
  aiohttp-fast-url-dispatcher==0.3.0
  aiohttp-zlib-ng==0.3.1
  Pillow==10.2.0
  paho-mqtt==1.6.1
  ifaddr==0.2.0
  SQLAlchemy==2.0.27
  fnv-hash-fast==0.5.0
  numpy==1.26.0
)
stamp_text="homeassistant==$HA_VERSION ${extra[*]}"
stamp=$venv/.server-analytics-installed

fail() {
  echo "homeassistant-venv: $*" >&2
  echo "homeassistant-venv: the Home Assistant tests cannot run without it (they fail, not skip)" >&2
  exit 1
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_text" ] && [ -x "$venv/bin/hass" ]; then
  echo "homeassistant-venv: $venv has Home Assistant $HA_VERSION"
  exit 0
fi

command -v "$python" >/dev/null || fail "no $python (Home Assistant $HA_VERSION needs Python >= 3.11)"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || fail "$python is $("$python" --version 2>&1); Home Assistant $HA_VERSION needs Python >= 3.11"

start=$(date +%s)
echo "homeassistant-venv: installing Home Assistant $HA_VERSION into $venv from PyPI (takes ~2 minutes)"
rm -rf "$venv"
"$python" -m venv "$venv" || fail "'$python -m venv $venv' failed (on Debian: apt-get install python3-venv)"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input -q)

# HA's own constraints file lives inside its wheel: fetch the wheel alone first, read the file.
dl=$venv/download
mkdir -p "$dl"
"${pip[@]}" download --no-deps -d "$dl" "homeassistant==$HA_VERSION" \
  || fail "cannot download homeassistant==$HA_VERSION from PyPI (is PyPI reachable?)"
constraints=$venv/package_constraints.txt
"$venv/bin/python" - "$dl" "$constraints" <<'EOF' || fail "no package_constraints.txt in the homeassistant wheel"
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/homeassistant-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("homeassistant/package_constraints.txt"))
EOF

"${pip[@]}" install -c "$constraints" "$dl"/homeassistant-*.whl "${extra[@]}" \
  || fail "pip install of homeassistant==$HA_VERSION failed (see above)"
rm -rf "$dl"
"$venv/bin/hass" --version >/dev/null || fail "$venv/bin/hass does not run"
printf '%s' "$stamp_text" >"$stamp"
echo "homeassistant-venv: installed in $(($(date +%s) - start)) s"
