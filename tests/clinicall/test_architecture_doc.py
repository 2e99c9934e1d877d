"""docs/architecture.md names every module of the service (the map a newcomer reads first stays whole)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("clinicall", "crm_bridge", "telephony", "queue_display", "audio", "messaging", "reminders", "speaker")


def test_every_module_is_on_the_map() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
               if path.name != "__init__.py" and "migrations" not in path.parts and path.parts[-2] != "versions"]
    assert len(modules) > 100
    missing = sorted(str(path.relative_to(ROOT)) for path in modules if path.name not in text)
    assert not missing, f"docs/architecture.md does not name: {missing}"
