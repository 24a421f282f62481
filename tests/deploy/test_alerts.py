"""The example alert rules in deploy/prometheus parse, use only series the backbone defines, and are written to
fire once per incident (aggregated, with `for:` or a window), and the Alertmanager example groups them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import Counter, Histogram

from edi.observability import metrics

PROMETHEUS = Path(__file__).parents[2] / "deploy" / "prometheus"
REQUIRED = {"EdiBacklogGrowing", "EdiOldestUnreadTooOld", "EdiDeadLetters", "EdiReceiverNotFetching"}


def defined_series() -> dict[str, set[str]]:
    """Every series name metrics.py defines (as exposed: counters end in _total), with its label names."""
    series: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if isinstance(value, Counter):
            series[f"{value._name}_total"] = set(value._labelnames)
        elif isinstance(value, Histogram):
            for suffix in ("_bucket", "_sum", "_count"):
                series[value._name + suffix] = set(value._labelnames) | ({"le"} if suffix == "_bucket" else set())
        elif isinstance(value, str) and value.startswith("edi_"):
            series[value] = set()  # sampled at scrape time: labels are the sampler's
    return series


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS / "alerts.yaml").read_text("utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_required_alerts_are_there_with_severity_and_a_summary() -> None:
    alerts = {rule["alert"]: rule for rule in rules()}
    assert set(alerts) >= REQUIRED
    for rule in alerts.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


def test_every_series_a_rule_uses_is_defined_in_the_metrics_module() -> None:
    series = defined_series()
    assert "edi_dead_letters_total" in series and "edi_consumer_lag" in series
    for rule in rules():
        used = set(re.findall(r"\bedi_\w+", rule["expr"]))
        assert used, f"{rule['alert']} uses no edi_* series"
        assert used <= set(series), f"{rule['alert']} uses undefined series {used - set(series)}"
        for name, labels in re.findall(r"\b(edi_\w+)\{([^}]*)\}", rule["expr"]):
            if series[name]:
                assert {label.split("=")[0].strip() for label in labels.split(",")} <= series[name]


def test_every_rule_aggregates_away_pods_and_waits_or_counts_over_a_window() -> None:
    for rule in rules():
        expr = rule["expr"]
        # Each selector sits inside an aggregation by service, topic or receiver: never one alert per pod.
        assert re.search(r"\b(sum|max|min) by \(", expr), rule["alert"]
        assert not re.search(r"\bby \([^)]*\b(pod|instance|partition)\b", expr), rule["alert"]
        # A condition that must hold for a while, or a count over a window: never a single sample's blip.
        assert "for" in rule or re.search(r"\b(increase|rate)\(", expr), rule["alert"]
        assert "keep_firing_for" in rule, rule["alert"]


def test_alertmanager_groups_by_service_and_receiver_and_inhibits_the_duplicate() -> None:
    config = yaml.safe_load((PROMETHEUS / "alertmanager.yml").read_text("utf-8"))
    route = config["route"]
    assert {"alertname", "service", "receiver_her_id"} <= set(route["group_by"])
    assert route["repeat_interval"]
    receivers = {receiver["name"] for receiver in config["receivers"]}
    assert route["receiver"] in receivers and all(r["receiver"] in receivers for r in route.get("routes", []))
    alerts = {rule["alert"] for rule in rules()}
    for inhibit in config["inhibit_rules"]:
        for matchers in (inhibit["source_matchers"], inhibit["target_matchers"]):
            for matcher in matchers:
                name, value = matcher.split("=")
                if name == "alertname":
                    assert value.strip('"') in alerts


def test_prometheus_loads_the_rules_and_sends_to_the_alertmanager() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text("utf-8"))
    assert [Path(path).name for path in config["rule_files"]] == ["alerts.yaml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
