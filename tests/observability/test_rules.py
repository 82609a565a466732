"""The Prometheus configuration, alert rules and Grafana dashboard of ``infra/observability`` (#16).

Checked by Prometheus's own ``promtool`` (Debian's prometheus package, installed by the project's
own step, ``infra/scripts/observe.sh install``: never skipped), and against the metric catalogue of
``docs/observability.md``, the contract between the services' ``/metrics`` and these files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.processes import REPO, free_port

OBS = REPO / "infra" / "observability"
OBSERVE = REPO / "infra" / "scripts" / "observe.sh"
CONFIG = OBS / "prometheus.yml"
RULE_FILES = sorted((OBS / "rules").glob("*.rules.yml"))
RULE_TESTS = sorted((OBS / "rules").glob("*_test.yml"))
DASHBOARD = OBS / "grafana" / "dashboard.json"
DOC = REPO / "docs" / "observability.md"
SERVICE_JOBS = {"ingest": 8081, "scoring": 8082, "response-time": 8083, "notifier": 8084}
# Series Prometheus makes itself (a target's health, the firing alerts), in no service's /metrics.
PROMETHEUS_SERIES = {"up", "ALERTS"}
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range"}


@pytest.fixture(scope="session")
def promtool() -> str:
    done = subprocess.run(["bash", str(OBSERVE), "install"], capture_output=True, text=True, timeout=600)
    if done.returncode:
        pytest.fail(f"infra/scripts/observe.sh install failed (Debian's prometheus package gives promtool):\n"
                    f"{done.stdout}{done.stderr}")
    path = shutil.which("promtool")
    assert path, "observe.sh install succeeded but no promtool is on PATH"
    return path


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


# --- what the expressions name ---------------------------------------------------------------------------

_NOT_METRICS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                "offset", "bool", "inf", "nan", "atan2"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label matchers, ranges
    and grouping label lists are taken out, less functions (a name before '(') and keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[m.end():].lstrip().startswith("(") or m.group().lower() in _NOT_METRICS:
            continue
        names.add(m.group())
    return names


def catalogue() -> dict[str, str]:
    """Name -> type, from the tables of docs/observability.md's "Metric catalogue" section."""
    text = DOC.read_text()
    section = re.search(r"^## Metric catalogue\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "docs/observability.md has no '## Metric catalogue' section"
    found = {}
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and re.fullmatch(r"`[a-z_:]+`", cells[0]):
            found[cells[0].strip("`")] = cells[1]
    return found


def known(name: str, metrics: dict[str, str]) -> bool:
    if name in metrics or name in PROMETHEUS_SERIES:
        return True
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return base != name and metrics.get(base) == "histogram"


def alert_rules() -> list[dict]:
    return [r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"] if "alert" in r]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[dict]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def dashboard_exprs() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in dashboard_panels() for t in p.get("targets", [])]


def test_metric_names_finds_the_selected_metrics_only():
    expr = ('histogram_quantile(0.95, sum by (service, le) (rate(csp_http_request_duration_seconds_bucket'
            '{service=~"$service", route!~"/health/.*"}[$__rate_interval]))) > 1e3 '
            'unless on (service) up offset 10m or sum without (instance) (csp_outbox_waiting) * 60')
    assert metric_names(expr) == {"csp_http_request_duration_seconds_bucket", "up", "csp_outbox_waiting"}


def test_the_catalogue_holds_the_metrics_of_the_contract():
    metrics = catalogue()
    assert metrics["csp_http_request_duration_seconds"] == "histogram"
    assert metrics["csp_consumer_lag"] == "gauge"
    assert metrics["faststream_received_processed_messages_total"] == "counter"
    assert {"csp_dead_letters_total", "csp_deliveries_total", "csp_graph_polls_total", "csp_graph_writebacks_total",
            "csp_score_changes_total", "csp_tenants_at_risk", "csp_outbox_oldest_age_seconds"} <= metrics.keys()


# --- the configuration ---------------------------------------------------------------------------------


def test_the_configuration_is_valid_and_scrapes_every_service_and_prometheus(promtool):
    done = run(promtool, "check", "config", str(CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in done.stdout + done.stderr
    config = yaml.safe_load(CONFIG.read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets == {**{job: [f"127.0.0.1:{port}"] for job, port in SERVICE_JOBS.items()},
                       "prometheus": ["127.0.0.1:9090"]}


def test_observe_renders_the_configuration_with_this_machines_ports(promtool, tmp_path):
    env = {**os.environ, "STATE_DIR": str(tmp_path / "state"), "INGEST_PORT": "18081", "READ_API_PORT": "18082",
           "RESPONSE_TIME_PORT": "18083", "NOTIFIER_PORT": "18084", "PROMETHEUS_PORT": "19090"}
    done = run("bash", str(OBSERVE), "render", str(tmp_path / "out"), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    rendered = tmp_path / "out" / "prometheus.yml"
    config = yaml.safe_load(rendered.read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets == {"ingest": ["127.0.0.1:18081"], "scoring": ["127.0.0.1:18082"],
                       "response-time": ["127.0.0.1:18083"], "notifier": ["127.0.0.1:18084"],
                       "prometheus": ["127.0.0.1:19090"]}
    assert config["rule_files"] == [f"{OBS}/rules/*.rules.yml"]
    # From another directory: the rule files are found by absolute path.
    checked = run(promtool, "check", "config", str(rendered), cwd=tmp_path)
    assert checked.returncode == 0 and "SUCCESS: 1 rule files found" in checked.stdout, checked.stdout + checked.stderr


# --- the rules ----------------------------------------------------------------------------------------


def test_the_rule_files_are_valid(promtool):
    assert RULE_FILES, "no infra/observability/rules/*.rules.yml"
    done = run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in done.stdout


def test_every_alert_says_how_bad_it_is_and_what_to_do():
    doc = DOC.read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", doc, re.M)}
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "two alerts share a name"
    assert {"CspConsumerLagHigh", "CspConsumerStalled", "CspDeadLettersGrowing", "CspDeliveriesFailing",
            "CspDeliveriesDeadLettered", "CspGraphPollsFailing", "CspGraphSyncDown", "CspGraphWritebacksFailing",
            "CspTenantsAtRisk"} <= set(names)
    for rule in alert_rules():
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{rule['alert']}: no for:"
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        annotations = rule["annotations"]
        assert len(annotations["summary"]) > 20 and len(annotations["description"]) > 100, rule["alert"]
        page, _, anchor = annotations["runbook"].partition("#")
        assert page == "docs/observability.md" and anchor == rule["alert"].lower() and anchor in anchors, (
            f"{rule['alert']}: its runbook annotation names no heading of docs/observability.md")


def test_every_alert_is_unit_tested_both_firing_and_silent():
    firing, silent = set(), set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case["alert_rule_test"]:
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts no test sees firing"
    assert names - silent == set(), "alerts no test sees silent"


def test_the_rule_unit_tests_pass(promtool):
    assert RULE_TESTS, "no infra/observability/rules/*_test.yml"
    done = run(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout and done.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_the_rule_unit_tests_catch_a_wrong_threshold(promtool, tmp_path):
    for path in (*RULE_FILES, *RULE_TESTS):
        shutil.copy(path, tmp_path / path.name)
    rules = tmp_path / "alerts.rules.yml"
    text = rules.read_text()
    assert "max(csp_tenants_at_risk) > 0" in text
    rules.write_text(text.replace("max(csp_tenants_at_risk) > 0", "max(csp_tenants_at_risk) > 2"))
    done = run(promtool, "test", "rules", *(str(tmp_path / p.name) for p in RULE_TESTS))
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr and "alertname: CspTenantsAtRisk" in done.stdout + done.stderr


def test_the_rules_use_only_catalogued_metrics():
    metrics = catalogue()
    used = {name for rule in alert_rules() for name in metric_names(rule["expr"])}
    assert {"csp_consumer_lag", "csp_dead_letters_total", "csp_deliveries_total", "csp_graph_polls_total",
            "csp_tenants_at_risk"} <= used
    assert {name for name in used if not known(name, metrics)} == set()


# --- the dashboard ------------------------------------------------------------------------------------


def test_the_dashboard_imports_with_a_prometheus_datasource_input():
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36 and board["id"] is None
    assert [(i["name"], i["type"], i["pluginId"]) for i in board["__inputs"]] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "two panels share an id"
    variables = {v["name"] for v in board["templating"]["list"]}
    for var in board["templating"]["list"]:
        assert var["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    for panel in dashboard_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            refs = set(re.findall(r"\$\{?(\w+)", target["expr"]))
            assert refs <= variables | GRAFANA_BUILTINS, f"{panel['title']}: unknown variable(s) {refs - variables}"


def test_the_dashboards_panels_do_not_overlap():
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        g = panel["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_the_dashboard_uses_only_catalogued_metrics_and_shows_every_one():
    metrics = catalogue()
    used = {name for _, expr in dashboard_exprs() for name in metric_names(expr)}
    used |= {m for v in dashboard()["templating"]["list"] for m in re.findall(r"label_values\((\w+)", v["definition"])}
    assert {name for name in used if not known(name, metrics)} == set()
    shown = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    assert {name for name in metrics if name.startswith("csp_")} - shown == set(), "catalogued metrics with no panel"


def test_the_dashboards_queries_are_promql(promtool, tmp_path):
    # promtool parses rule expressions: each query, its variables given values, as a recording rule.
    def concrete(expr: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: "5m" if m.group(1) in GRAFANA_BUILTINS else ".*", expr)

    exprs = [expr for _, expr in dashboard_exprs()]
    rules = [{"record": f"dashboard:query_{i}", "expr": concrete(expr)} for i, expr in enumerate(exprs)]
    assert len(rules) >= 25
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = run(promtool, "check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


# --- make observe ---------------------------------------------------------------------------------------


def test_observe_runs_prometheus_with_the_rules_and_every_target(promtool, tmp_path):
    port = free_port()
    env = {**os.environ, "STATE_DIR": str(tmp_path / "state"), "PROMETHEUS_PORT": str(port),
           **{var: str(p) for var, p in zip(("INGEST_PORT", "READ_API_PORT", "RESPONSE_TIME_PORT", "NOTIFIER_PORT"),
                                            SERVICE_JOBS.values(), strict=True)}}
    log = (tmp_path / "prometheus.log").open("w")
    # observe.sh execs Prometheus: this pid is Prometheus's own, stopped below with SIGTERM.
    proc = subprocess.Popen(["bash", str(OBSERVE), "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                if httpx.get(f"{base}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "Prometheus not ready in 60 s"
            time.sleep(0.5)
        rules = httpx.get(f"{base}/api/v1/rules", params={"type": "alert"}).json()["data"]["groups"]
        assert {r["name"] for g in rules for r in g["rules"]} == {r["alert"] for r in alert_rules()}
        assert all(r["health"] != "err" for g in rules for r in g["rules"])
        # Its own target answers once scraped (every 10 s); the services' are listed whether up or not.
        deadline = time.monotonic() + 30
        while True:
            active = httpx.get(f"{base}/api/v1/targets").json()["data"]["activeTargets"]
            health = {t["labels"]["job"]: (t["scrapeUrl"], t["health"]) for t in active}
            if health.get("prometheus", ("", ""))[1] == "up" or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert health["prometheus"] == (f"{base}/metrics", "up")
        assert {job: url for job, (url, _) in health.items() if job != "prometheus"} == {
            job: f"http://127.0.0.1:{p}/metrics" for job, p in SERVICE_JOBS.items()}
        assert (tmp_path / "state" / "prometheus" / "data").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
