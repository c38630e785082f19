"""Generate deploy/grafana/hq-overview.json, hq's Grafana dashboard, with grafana-foundation-sdk's typed
builders.

    python deploy/grafana/dashboard.py            # write the JSON beside this file
    python deploy/grafana/dashboard.py --check    # exit 1 when the committed JSON differs

Import the JSON into Grafana (Dashboards → New → Import, or a provisioning folder) and pick the Prometheus
data source that scrapes hq. Every query names only metrics hq exports (a test checks it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.timeseries import Panel as TimeSeries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUT = Path(__file__).resolve().parent / "hq-overview.json"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "[$__rate_interval]"


def query(expr: str, legend: str) -> Dataquery:
    return Dataquery().expr(expr).legend_format(legend)


class Panels:
    """Makes the dashboard's rows and time-series panels, numbered from 1 in the order made."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def panel(self, title: str, unit: str, *queries: Dataquery, description: str = "") -> TimeSeries:
        built = TimeSeries().id(next(self._ids)).title(title).unit(unit).datasource(DATASOURCE)
        built = built.height(8).span(8)
        if description:
            built = built.description(description)
        for ref, q in zip("ABCDEFGH", queries, strict=False):
            built = built.with_target(q.ref_id(ref))
        return built

    def row(self, title: str) -> Row:
        return Row(title).id(next(self._ids))


def quantiles(metric: str, by: str) -> list[Dataquery]:
    return [
        query(
            f"histogram_quantile({q}, sum by (le{', ' + by if by else ''}) (rate({metric}_bucket{RATE})))",
            f"p{round(q * 100)}{' {{' + by + '}}' if by else ''}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


def build() -> Dashboard:
    made = Panels()
    panel, row = made.panel, made.row
    http_total = f"sum(rate(hq_http_requests_total{RATE}))"
    return (
        Dashboard("hq overview")
        .uid("hq-overview")
        .description(
            "hq (hikyuu-qlib): the HTTP service, the model registry, the cache, data loads and jobs."
        )
        .tags(["hq", "hikyuu-qlib"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_row(row("HTTP service"))
        .with_panel(
            panel(
                "Request rate by route",
                "reqps",
                query(f"sum by (route) (rate(hq_http_requests_total{RATE}))", "{{route}}"),
            )
        )
        .with_panel(
            panel(
                "Server errors (5xx ratio)",
                "percentunit",
                query(f'sum(rate(hq_http_requests_total{{status=~"5.."}}{RATE})) / {http_total}', "5xx"),
                query(f'sum(rate(hq_http_requests_total{{status=~"4.."}}{RATE})) / {http_total}', "4xx"),
                query(f"sum(rate(hq_auth_failures_total{RATE}))", "auth failures/s"),
                description="The SLO counts 5xx only; auth failures are refused credentials a second.",
            )
        )
        .with_panel(panel("Request latency", "s", *quantiles("hq_http_request_duration_seconds", "")))
        .with_row(row("Model registry"))
        .with_panel(
            panel(
                "Registry latency p95 by operation",
                "s",
                query(
                    f"histogram_quantile(0.95, sum by (le, operation) "
                    f"(rate(hq_db_query_duration_seconds_bucket{RATE})))",
                    "{{operation}}",
                ),
            )
        )
        .with_panel(
            panel(
                "Registry operations",
                "ops",
                query(
                    f"sum by (operation, status) (rate(hq_db_queries_total{RATE}))",
                    "{{operation}} {{status}}",
                ),
            )
        )
        .with_panel(
            panel(
                "Registry retries",
                "ops",
                query(
                    f"sum by (backend, reason) (rate(hq_db_retries_total{RATE}))", "{{backend}} {{reason}}"
                ),
            )
        )
        .with_row(row("Cache"))
        .with_panel(
            panel(
                "Cache hit ratio by tier",
                "percentunit",
                query(
                    f'sum by (tier) (rate(hq_cache_requests_total{{result="hit"}}{RATE})) '
                    f"/ sum by (tier) (rate(hq_cache_requests_total{RATE}))",
                    "{{tier}}",
                ),
            )
        )
        .with_panel(
            panel(
                "Cache lookups",
                "ops",
                query(f"sum by (tier, result) (rate(hq_cache_requests_total{RATE}))", "{{tier}} {{result}}"),
            )
        )
        .with_panel(panel("Cache size", "bytes", query("sum by (tier) (hq_cache_bytes)", "{{tier}}")))
        .with_row(row("Market data"))
        .with_panel(
            panel(
                "Bars loaded per second",
                "short",
                query(f"sum by (store_kind) (rate(hq_data_bars_loaded_total{RATE}))", "{{store_kind}}"),
            )
        )
        .with_panel(panel("Data load time", "s", *quantiles("hq_data_load_duration_seconds", "store_kind")))
        .with_panel(
            panel(
                "Codes that failed to load",
                "short",
                query(f"sum by (error_type) (rate(hq_data_load_errors_total{RATE}))", "{{error_type}}"),
            )
        )
        .with_row(row("Jobs and stages"))
        .with_panel(
            panel(
                "Mean stage time",
                "s",
                query(
                    f"sum by (stage) (rate(hq_stage_duration_seconds_sum{RATE})) "
                    f"/ sum by (stage) (rate(hq_stage_duration_seconds_count{RATE}))",
                    "{{stage}}",
                ),
            )
        )
        .with_panel(
            panel(
                "Jobs finished and running",
                "short",
                query(f"sum by (kind, status) (increase(hq_jobs_total{RATE}))", "{{kind}} {{status}}"),
                query("sum by (kind) (hq_jobs_running)", "running {{kind}}"),
            )
        )
        .with_panel(
            panel(
                "Time since a job last succeeded",
                "s",
                query("time() - max by (kind) (hq_job_last_success_timestamp_seconds)", "{{kind}}"),
            )
        )
        .with_row(row("Process"))
        .with_panel(
            panel(
                "Memory (resident)",
                "bytes",
                query("process_resident_memory_bytes and on (job, instance) hq_build_info", "{{instance}}"),
            )
        )
        .with_panel(
            panel(
                "CPU",
                "percentunit",
                query(
                    f"rate(process_cpu_seconds_total{RATE}) and on (job, instance) hq_build_info",
                    "{{instance}}",
                ),
            )
        )
        .with_panel(panel("Version", "none", query("count by (version) (hq_build_info)", "{{version}}")))
    )


def render() -> str:
    """The dashboard's JSON text, stable (sorted keys) so that it can be compared."""
    return json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="compare with the committed JSON instead of writing"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            sys.stderr.write(f"{OUT} is out of date: run python {Path(__file__).name}\n")
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
