"""Prometheus text-format metrics, kept in-process (one set per worker process)."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import defaultdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    # Prometheus's text format: backslash, double quote and line feed escaped in label values.
    escaped = (
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'.replace(
            "\n", "\\n"
        )
        for k, v in pairs
    )
    return "{" + ",".join(escaped) + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self._decisions: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self._latency: dict[str, list[int]] = {}
        self._latency_sum: dict[str, float] = defaultdict(float)
        self._latency_count: dict[str, int] = defaultdict(int)
        self.cache_hits = 0
        self.cache_misses = 0
        # Gateway caches of earlier serving states (a new state starts with empty caches).
        self._retired: dict[str, int] = defaultdict(int)
        self.active_revision = ""

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        # One counter per bucket (not cumulative: one increment per request, found by bisection);
        # render() sums them into Prometheus' cumulative buckets.
        key = (("route", route), ("method", method), ("status", str(status)))
        slot = bisect_left(LATENCY_BUCKETS, seconds)
        with self._lock:
            self._requests[key] += 1
            buckets = self._latency.get(route)
            if buckets is None:
                buckets = self._latency[route] = [0] * (len(LATENCY_BUCKETS) + 1)
            buckets[slot] += 1
            self._latency_sum[route] += seconds
            self._latency_count[route] += 1

    def observe_decision(self, kind: str, allowed: bool) -> None:
        with self._lock:
            self._decisions[(("kind", kind), ("allowed", "true" if allowed else "false"))] += 1

    def retire_cache_stats(self, stats: dict[str, int]) -> None:
        """Keep the counts of a gateway that is being replaced (counters never go down)."""
        with self._lock:
            for key, value in stats.items():
                self._retired[key] += value

    def observe_cache(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self.cache_hits += 1
            else:
                self.cache_misses += 1

    def render(self, cache_stats: dict[str, int] | None = None) -> str:
        """The text format; ``cache_stats`` are the live gateway's counters."""
        live = cache_stats or {}
        with self._lock:
            cache = {
                key: self._retired[key] + live.get(key, 0)
                for key in ("decision_hits", "decision_misses", "rewrite_hits", "rewrite_misses")
            }
            decision_hits = self.cache_hits + cache["decision_hits"]
            decision_misses = self.cache_misses + cache["decision_misses"]
            lines = [
                "# HELP meshgov_http_requests_total HTTP requests by route, method and status.",
                "# TYPE meshgov_http_requests_total counter",
            ]
            lines += [
                f"meshgov_http_requests_total{_labels(k)} {v}" for k, v in self._requests.items()
            ]
            lines += [
                "# HELP meshgov_decisions_total Decisions by kind and outcome.",
                "# TYPE meshgov_decisions_total counter",
            ]
            lines += [
                f"meshgov_decisions_total{_labels(k)} {v}" for k, v in self._decisions.items()
            ]
            denials = sum(v for k, v in self._decisions.items() if ("allowed", "false") in k)
            lines += [
                "# HELP meshgov_denials_total Decisions that denied.",
                "# TYPE meshgov_denials_total counter",
                f"meshgov_denials_total {denials}",
                "# HELP meshgov_http_request_duration_seconds Request latency by route.",
                "# TYPE meshgov_http_request_duration_seconds histogram",
            ]
            for route, buckets in self._latency.items():
                cumulative = 0
                for bound, count in zip(LATENCY_BUCKETS, buckets, strict=False):
                    cumulative += count
                    labels = _labels((("route", route), ("le", str(bound))))
                    lines.append(
                        f"meshgov_http_request_duration_seconds_bucket{labels} {cumulative}"
                    )
                labels = _labels((("route", route), ("le", "+Inf")))
                lines.append(
                    f"meshgov_http_request_duration_seconds_bucket{labels} "
                    f"{self._latency_count[route]}"
                )
                route_label = _labels((("route", route),))
                lines.append(
                    f"meshgov_http_request_duration_seconds_sum{route_label} "
                    f"{self._latency_sum[route]:.6f}"
                )
                lines.append(
                    f"meshgov_http_request_duration_seconds_count{route_label} "
                    f"{self._latency_count[route]}"
                )
            lines += [
                "# HELP meshgov_decision_cache_hits_total Access decisions served from the cache.",
                "# TYPE meshgov_decision_cache_hits_total counter",
                f"meshgov_decision_cache_hits_total {decision_hits}",
                "# HELP meshgov_decision_cache_misses_total Access decisions evaluated.",
                "# TYPE meshgov_decision_cache_misses_total counter",
                f"meshgov_decision_cache_misses_total {decision_misses}",
                "# HELP meshgov_rewrite_cache_hits_total Authorizations served from the cache.",
                "# TYPE meshgov_rewrite_cache_hits_total counter",
                f"meshgov_rewrite_cache_hits_total {cache['rewrite_hits']}",
                "# HELP meshgov_rewrite_cache_misses_total Authorizations computed.",
                "# TYPE meshgov_rewrite_cache_misses_total counter",
                f"meshgov_rewrite_cache_misses_total {cache['rewrite_misses']}",
                "# HELP meshgov_active_policy_revision The active policy revision (value 1).",
                "# TYPE meshgov_active_policy_revision gauge",
                f"meshgov_active_policy_revision{_labels((('revision', self.active_revision),))} 1",
            ]
        return "\n".join(lines) + "\n"
