#!/usr/bin/env bash
# Checks the production stack without a container engine: docker-compose.yml, the files
# it mounts, the Dockerfile's build context and the commands it runs.
#
#   tests/compose_check.sh [RUAFLOW_BINARY]     # default target/debug/ruaflow
#
# - `docker compose config` (or Debian's docker-compose, installed with apt when neither
#   client is there) validates the file, with the defaults, with every setting given, and
#   with the commented-out ingest-imap service switched on;
# - every bind-mounted file or directory exists (./inbox is created at run time);
# - the build context that .dockerignore leaves holds the whole Cargo workspace (the
#   manifests, every file an include_str!/include_bytes! names) and nothing else, and
#   `cargo metadata --locked --offline` resolves in a copy of it;
# - each ruaflow service's command parses (`ruaflow <command…> --help`);
# - the pieces agree: Grafana's mounts and the provisioning's paths and variables, the
#   secrets two services share, the addresses Prometheus scrapes and ruaflow connects to;
# - Prometheus' config passes `promtool check config` (Debian's prometheus, which
#   tests/dashboards.py installs; with CI=true its absence is a failure).
# A compose client that cannot be installed is a failure, never a skip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "tests/compose_check.sh: $*" >&2; exit 1; }
binary=${1:-target/debug/ruaflow}

# The compose client: the docker CLI plugin if present, else Debian's docker-compose (v1,
# the only one bookworm packages; it validates the same Compose file format).
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "no compose client, and cannot install docker-compose (not root, no sudo)"
        sudo=sudo
    fi
    echo "installing Debian's docker-compose (no engine is needed to validate)"
    log=$(mktemp)
    if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >"$log" 2>&1; then
        $sudo apt-get update -qq >>"$log" 2>&1 || { cat "$log" >&2; die "apt-get update failed"; }
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >>"$log" 2>&1 ||
            { tail -n 30 "$log" >&2; die "apt-get install docker-compose failed"; }
    fi
    rm -f "$log"
    compose=(docker-compose)
fi
echo "compose client: $("${compose[@]}" version 2>/dev/null | head -n 1)"

work=$(mktemp -d -t ruaflow-compose.XXXXXX)
trap 'rm -rf "$work"' EXIT

# 1. The file validates, as it is and with every setting of the environment given.
# The docker CLI plugin (v2) renders JSON; Debian's v1 renders YAML, read with the PyYAML
# it depends on.
format=()
[[ ${compose[0]} == docker ]] && format=(--format json)
"${compose[@]}" -f docker-compose.yml config -q || die "docker-compose.yml does not validate"
CLICKHOUSE_PASSWORD=ch-secret GRAFANA_CLICKHOUSE_PASSWORD=gf-secret GRAFANA_ADMIN_PASSWORD=admin-secret \
    RUAFLOW_HTTP_TOKEN=token-secret RUAFLOW_PUBLISH=0.0.0.0 RUAFLOW_PARTITIONS=16 RUAFLOW_INBOX=/srv/dmarc \
    KAFKA_CLUSTER_ID=AAAAAAAAAAAAAAAAAAAAAA RUST_LOG=debug \
    "${compose[@]}" -f docker-compose.yml config "${format[@]}" >"$work/config.yml" ||
    die "docker-compose.yml does not validate with every setting given"
"${compose[@]}" -f docker-compose.yml config "${format[@]}" >"$work/defaults.yml"
# The commented-out ingest-imap service, switched on (its block uncommented), validates too.
awk '/^  # ingest-imap:$/ {on = 1} on && /^$/ {on = 0} on {sub(/^  # /, "  ")} {print}' docker-compose.yml \
    >"$work/with-imap.yml"
grep -q '^  ingest-imap:$' "$work/with-imap.yml" || die "docker-compose.yml has no commented-out ingest-imap service"
"${compose[@]}" -f "$work/with-imap.yml" --project-directory . config "${format[@]}" >"$work/imap.yml" ||
    die "docker-compose.yml does not validate with the ingest-imap service switched on"

# 2. Services, mounts, agreement, build context and commands, in Python: the
# interpreter docker-compose v1 runs on (it has PyYAML), else python3.
python=python3
if [[ ${compose[0]} == docker-compose ]]; then
    shebang=$(head -n 1 "$(command -v docker-compose)")
    [[ $shebang == '#!'*python* ]] && python=${shebang#\#!}
fi
"$python" - "$work/defaults.yml" "$work/config.yml" "$binary" "$work" "$work/imap.yml" <<'PY'
import json, os, re, shutil, subprocess, sys

def load(path):
    text = open(path).read()
    if text.lstrip().startswith("{"):
        return json.loads(text)
    import yaml
    return yaml.safe_load(text)

defaults_path, settings_path, binary, work, imap_path = sys.argv[1:6]
config = load(defaults_path)
errors = []
services = config["services"]
# The ingest-imap service as it is once uncommented: checked with the others below.
imap = load(imap_path)["services"].get("ingest-imap")
if imap is None:
    errors.append("the switched-on docker-compose.yml has no ingest-imap service")
else:
    services = {**services, "ingest-imap": imap}
    imap_env = {k: str(v) for k, v in (imap.get("environment") or {}).items()}
    compose_toml = open("dashboards/compose/ruaflow.toml").read()
    for var in ("RUAFLOW_IMAP_PASSWORD", "RUAFLOW_IMAP_CLIENT_SECRET"):
        if var not in imap_env:
            errors.append(f"ingest-imap does not pass {var} from .env")
        if f'env = "{var}"' not in compose_toml.replace("\n# ", " "):
            errors.append(f"dashboards/compose/ruaflow.toml does not read {var}")

# Every setting reaches the services.
given = load(settings_path)["services"]
flat = json.dumps(given)
for value in ("ch-secret", "gf-secret", "admin-secret", "token-secret", "/srv/dmarc", "AAAAAAAAAAAAAAAAAAAAAA"):
    if value not in flat:
        errors.append(f"the setting {value!r} does not reach the services")
if "16" not in [str(c) for c in given["process"]["command"]]:
    errors.append("RUAFLOW_PARTITIONS does not reach the process command")
if not any("0.0.0.0" in json.dumps(p) for p in given["grafana"].get("ports", [])):
    errors.append("RUAFLOW_PUBLISH does not reach the published ports")

# Services, order and health.
want = {"kafka", "clickhouse", "migrate", "process", "ingest-http", "ingest-dir", "prometheus", "grafana"}
missing = want - set(services)
if missing:
    errors.append(f"services missing: {sorted(missing)}")
for name in ("kafka", "clickhouse", "process", "ingest-http", "prometheus", "grafana"):
    if "healthcheck" not in services.get(name, {}):
        errors.append(f"{name} has no healthcheck")
dep = lambda s: services.get(s, {}).get("depends_on", {})
if dep("process").get("migrate", {}).get("condition") != "service_completed_successfully":
    errors.append("process must wait for migrate to complete successfully")
for s, on in (("process", "kafka"), ("process", "clickhouse"), ("migrate", "clickhouse"),
              ("ingest-http", "kafka"), ("ingest-dir", "kafka"), ("ingest-imap", "kafka")):
    if dep(s).get(on, {}).get("condition") != "service_healthy":
        errors.append(f"{s} must wait for {on} to be healthy")
for v in ("kafka-data", "clickhouse-data", "grafana-data", "prometheus-data"):
    if v not in (config.get("volumes") or {}):
        errors.append(f"no named volume {v}")

# Bind mounts exist (./inbox is created by the engine on first start).
def mounts(svc):
    out = {}
    for vol in svc.get("volumes", []):
        if isinstance(vol, str):
            parts = vol.split(":")
            out[parts[1]] = parts[0]
        else:
            out[vol.get("target")] = vol.get("source", "")
    return out
for name, svc in services.items():
    for target, source in mounts(svc).items():
        if source.startswith("/") and not source.endswith("/inbox") and not os.path.exists(source):
            errors.append(f"{name}: mounts {source}, which does not exist")

# The pieces agree with each other: Grafana's mounts and provisioning, secrets shared
# by two services, the addresses Prometheus and the ruaflow services use.
grafana = services["grafana"]
gm = mounts(grafana)
provider = open("dashboards/grafana/provisioning/dashboards/ruaflow.yaml").read()
dash_dir = re.search(r"path:\s*(\S+)", provider).group(1)
if not gm.get(dash_dir, "").endswith("dashboards/grafana/dashboards"):
    errors.append(f"grafana must mount dashboards/grafana/dashboards at {dash_dir} (the provider's path)")
if not gm.get("/etc/grafana/provisioning", "").endswith("dashboards/grafana/provisioning"):
    errors.append("grafana must mount dashboards/grafana/provisioning at /etc/grafana/provisioning")
genv = {k: str(v) for k, v in grafana.get("environment", {}).items()}
home = genv.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", "")
if not home.startswith(dash_dir + "/") or not os.path.exists(os.path.join("dashboards/grafana/dashboards", os.path.basename(home))):
    errors.append(f"the home dashboard {home!r} is not one of dashboards/grafana/dashboards")
if "grafana-clickhouse-datasource" not in genv.get("GF_PLUGINS_PREINSTALL_SYNC", ""):
    errors.append("grafana must preinstall grafana-clickhouse-datasource")
provisioning = "".join(l for l in open("dashboards/grafana/provisioning/datasources/ruaflow.yaml") if not l.lstrip().startswith("#"))
for var in set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", provisioning)):
    if var not in genv:
        errors.append(f"the data source provisioning reads ${var}, which grafana's environment does not set")
def env(service, name, config=None):
    return str(((config or services)[service].get("environment") or {}).get(name))
pairs = [(("clickhouse", "CLICKHOUSE_PASSWORD"), ("process", "RUAFLOW_CLICKHOUSE_PASSWORD")),
         (("clickhouse", "CLICKHOUSE_PASSWORD"), ("migrate", "RUAFLOW_CLICKHOUSE_PASSWORD")),
         (("clickhouse", "GRAFANA_CLICKHOUSE_PASSWORD"), ("grafana", "GRAFANA_CLICKHOUSE_PASSWORD")),
         (("clickhouse", "GRAFANA_CLICKHOUSE_USER"), ("grafana", "GRAFANA_CLICKHOUSE_USER"))]
for (s1, v1), (s2, v2) in pairs:
    for cfg in (services, given):
        if env(s1, v1, cfg) != env(s2, v2, cfg):
            errors.append(f"{s1} {v1} ({env(s1, v1, cfg)!r}) and {s2} {v2} ({env(s2, v2, cfg)!r}) must agree")
advertised = re.search(r"PLAINTEXT://([^,]+)", str(services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"])).group(1)
for name in ("migrate", "process", "ingest-http", "ingest-dir", "ingest-imap"):
    if name != "migrate" and str(services[name]["environment"].get("RUAFLOW_KAFKA")) != advertised:
        errors.append(f"{name}: RUAFLOW_KAFKA must be Kafka's advertised listener {advertised}")
    if not str(services[name]["environment"].get("RUAFLOW_CLICKHOUSE", "")).startswith("http://ruaflow@clickhouse:8123/"):
        errors.append(f"{name}: RUAFLOW_CLICKHOUSE must name the ruaflow user at clickhouse:8123")
prom = open("dashboards/compose/prometheus.yml").read()
toml = open("dashboards/compose/ruaflow.toml").read()
listen = dict(zip(services["process"]["command"][::1], services["process"]["command"][1:])).get("--listen", "")
if not re.search(r"names: \[process\]\s+type: A\s+port: " + re.escape(listen.rsplit(":", 1)[-1]), prom):
    errors.append(f"prometheus.yml must scrape process on the port of its --listen {listen}")
http_port = re.search(r'listen = "[^"]*:(\d+)"', toml).group(1)
if not re.search(r"names: \[ingest-http\]\s+type: A\s+port: " + http_port, prom):
    errors.append(f"prometheus.yml must scrape ingest-http on {http_port}, the [http] listen port")
if not any(http_port in json.dumps(p) for p in services["ingest-http"].get("ports", [])):
    errors.append(f"ingest-http must publish {http_port}")

# The build context: what .dockerignore lets through.
def ignored(patterns, path):
    keep = True
    for negate, pattern in patterns:
        rx = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        rx = "^" + rx.replace(r"\*", "[^/]*").replace(r"\?", "[^/]") + "(/.*)?$"
        if re.match(rx, path):
            keep = negate
    return not keep
patterns = []
for line in open(".dockerignore"):
    line = line.strip()
    if line and not line.startswith("#"):
        negate = line.startswith("!")
        patterns.append((negate, os.path.normpath(line.lstrip("!")).lstrip("/")))
def may_reinclude(directory):
    return any(neg and (p == directory or p.startswith(directory + "/")) for neg, p in patterns)
context = []
for dirpath, dirnames, filenames in os.walk("."):
    rel = os.path.relpath(dirpath, ".")
    rel = "" if rel == "." else rel
    keep_dirs = []
    for d in dirnames:
        path = os.path.join(rel, d) if rel else d
        if d == ".git" or (ignored(patterns, path) and not may_reinclude(path)):
            continue
        keep_dirs.append(d)
    dirnames[:] = keep_dirs
    for f in filenames:
        path = os.path.join(rel, f) if rel else f
        if not ignored(patterns, path):
            context.append(path)
for p in ("Cargo.toml", "Cargo.lock", "src/main.rs", "schema/Cargo.toml", "ingest/Cargo.toml", "processor/Cargo.toml",
          "schema/sql/clickhouse/0001_init.sql", "ruaflow.example.toml"):
    if p not in context:
        errors.append(f"the build context lacks {p}")
for p in context:
    if p.split("/")[0] in ("tests", "bench", "fuzz", "dashboards", "target", ".git") or p.endswith(".db"):
        errors.append(f"the build context holds {p}, which the image does not need")
copy = os.path.join(work, "context")
for p in context:
    os.makedirs(os.path.dirname(os.path.join(copy, p)), exist_ok=True)
    shutil.copy2(p, os.path.join(copy, p))
for p in context:
    if p.endswith(".rs"):
        for inc in re.findall(r'include_(?:str|bytes)!\(\s*"([^"]+)"', open(p).read()):
            target = os.path.normpath(os.path.join(os.path.dirname(p), inc))
            if not os.path.exists(os.path.join(copy, target)):
                errors.append(f"{p} includes {target}, which is not in the build context")
host = re.search(r"^host: (\S+)", subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout, re.M).group(1)
meta = subprocess.run(["cargo", "metadata", "--locked", "--offline", "--format-version", "1", "--filter-platform", host],
                      cwd=copy, capture_output=True, text=True)
if meta.returncode != 0:
    errors.append(f"cargo metadata --locked --offline fails in the build context:\n{meta.stderr[-1500:]}")
else:
    members = {p["name"] for p in json.loads(meta.stdout)["packages"] if p["source"] is None}
    if "ruaflow" not in members:
        errors.append(f"the workspace in the build context has no ruaflow package: {members}")

# Each ruaflow command parses.
dockerfile = open("Dockerfile").read()
for needle in ("FROM rust:", "cargo build --release --locked", 'ENTRYPOINT ["ruaflow"]', "USER ruaflow", "FROM debian:"):
    if needle not in dockerfile:
        errors.append(f"Dockerfile: expected {needle!r}")
if os.access(binary, os.X_OK):
    for name, svc in services.items():
        if svc.get("image") != "ruaflow:local":
            continue
        cmd = [os.path.abspath(binary)] + [str(c) for c in svc["command"]] + ["--help"]
        env = {**os.environ, **{k: str(v) for k, v in (svc.get("environment") or {}).items()}}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode != 0:
            errors.append(f"{name}: `ruaflow {' '.join(map(str, svc['command']))}` does not parse: {out.stderr.strip()[-500:]}")
        else:
            print(f"  {name}: ruaflow {' '.join(map(str, svc['command']))}")
elif os.environ.get("CI") == "true":
    errors.append(f"{binary} is not built: the services' commands cannot be checked")
else:
    print(f"  (no {binary}: the services' commands are not checked)")

if errors:
    print("\n".join("FAIL " + e for e in errors))
    sys.exit(1)
print(f"  build context: {len(context)} files; {len(services)} services")
PY

# 3. Prometheus' config.
if command -v promtool >/dev/null 2>&1; then
    promtool check config dashboards/compose/prometheus.yml >/dev/null || die "promtool rejects dashboards/compose/prometheus.yml"
elif [[ ${CI:-} == true ]]; then
    die "promtool is missing (Debian package prometheus)"
else
    echo "  (no promtool: dashboards/compose/prometheus.yml not checked)"
fi
echo "compose: docker-compose.yml, its mounts, the build context and the commands are valid"
