"""Application state of the telephony room."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from telephony.ami import AmiLink
    from telephony.calllog import CallLog
    from telephony.demo_pbx import DemoPbx
    from telephony.ratelimit import RateLimiter
    from telephony.telemetry import TelephonyMetrics

CALL_LOG_KEY: web.AppKey[CallLog] = web.AppKey("telephony_call_log")
AMI_LINK_KEY: web.AppKey[AmiLink | None] = web.AppKey("telephony_ami_link")
RATE_LIMIT_KEY: web.AppKey[RateLimiter] = web.AppKey("telephony_rate_limit")
DEMO_PBX_KEY: web.AppKey[DemoPbx | None] = web.AppKey("telephony_demo_pbx")
TELEPHONY_METRICS_KEY: web.AppKey[TelephonyMetrics] = web.AppKey("telephony_metrics")
