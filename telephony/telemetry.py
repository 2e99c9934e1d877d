"""Prometheus metrics of the AMI link, registered in the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class TelephonyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.ami_up = Gauge("clinicall_ami_up", "1 when the AMI link is logged in and Asterisk fully booted",
                            registry=registry)
        self.ami_events = Counter("clinicall_ami_events", "AMI events received", registry=registry)
        self.ami_reconnects = Counter("clinicall_ami_connections_lost", "AMI connections lost", registry=registry)
        self.originates = Counter("clinicall_originates", "Originate results", ["result"], registry=registry)
        self.clicks = Counter("clinicall_click_to_call", "click-to-call requests", ["outcome"], registry=registry)
