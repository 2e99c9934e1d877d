"""`clinicall audio warm`, `clinicall audio record-set`, `clinicall audio say`, and `clinicall speaker`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from audio.wording import (
    DEFAULT_ROOM_TEMPLATES,
    VI_LETTERS,
    Wording,
    announcement_segments,
    spoken_literal,
    template_parts,
    wording_from_settings,
)
from clinicall.settings import AudioSettings, Settings

log = logging.getLogger(__name__)
ROOM_KINDS = ("consult", "counter", "lab", "imaging")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    audio = subparsers.add_parser("audio", help="announcements: pre-render clips, make a recorded clip set")
    audio_sub = audio.add_subparsers(dest="audio_command", required=True)

    warm = audio_sub.add_parser("warm", help="pre-render every ticket number and room in every language")
    warm.add_argument("--numbers", type=int, help="render numbers 1..N per prefix (default settings.audio.warm_numbers)")
    warm.add_argument("--prefixes", help="ticket prefixes, e.g. A,B,XN (default: the database's services)")
    warm.add_argument("--rooms", help="rooms as kind:number, e.g. consult:1,consult:2,counter:1 (default: the database's rooms)")
    warm.add_argument("--languages", help="e.g. vi,en (default settings.audio.languages)")
    warm.add_argument("--workers", type=int, default=2)
    warm.set_defaults(func=cmd_warm)

    record = audio_sub.add_parser("record-set", help="make a recorded clip set (one WAV per phrase) with an engine")
    record.add_argument("--engine", default="espeak", choices=["espeak", "gtts"])
    record.add_argument("--out", help="folder (default settings.audio.recorded_dir)")
    record.add_argument("--languages", help="e.g. vi,en (default settings.audio.languages)")
    record.set_defaults(func=cmd_record_set)

    say = audio_sub.add_parser("say", help="render one announcement to a WAV file (to listen to the wording)")
    say.add_argument("number", help="ticket number, e.g. A015")
    say.add_argument("--room", default="consult:1", help="kind:number, e.g. consult:3")
    say.add_argument("--out", required=True, help="WAV file to write")
    say.set_defaults(func=cmd_say)

    from clinicall_speaker import add_arguments

    speaker = subparsers.add_parser("speaker", help="play a room's announcements (or write them to a folder)")
    add_arguments(speaker)
    speaker.set_defaults(func=cmd_speaker)


def _split(raw: str | None) -> list[str]:
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def parse_room(raw: str, index: int = 0) -> dict[str, Any]:
    kind, _, number = raw.partition(":")
    if kind not in ROOM_KINDS or (number and not number.isdigit()):
        raise SystemExit(f"--rooms: {raw!r} is not kind:number with kind one of {', '.join(ROOM_KINDS)}")
    return {"id": -1 - index, "kind": kind, "number": int(number) if number else None, "names": {}}


async def catalog_from_database(settings: Settings) -> tuple[list[str], list[dict[str, Any]]]:
    """Service prefixes and rooms through the queue room's service functions ([] when it has none)."""
    try:
        from queue_display import service as queue_service
    except ImportError:
        return [], []
    from clinicall.db import Database

    db = Database(settings.database.url)
    try:
        services = await queue_service.list_services(db, include_inactive=False)
        rooms = await queue_service.list_rooms(db)
    except Exception as exc:  # no such table yet, database unreachable ...
        log.warning("could not read services and rooms from the database: %s", exc)
        return [], []
    finally:
        await db.dispose()
    prefixes = sorted({str(s.prefix) for s in services if getattr(s, "prefix", None)})
    room_dicts = [{"id": r.id, "kind": r.kind, "number": r.number, "names": dict(r.names or {})} for r in rooms]
    return prefixes, room_dicts


def warm_segments(wording: Wording, languages: Iterable[str], prefixes: list[str], numbers: int,
                  rooms: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Every (language, text) piece an announcement can need: template words, ticket numbers, rooms."""
    wanted: dict[tuple[str, str], None] = {}
    for lang in languages:
        for prefix in prefixes:
            for n in range(1, numbers + 1):
                for room in rooms[:1]:
                    for segment in announcement_segments(f"{prefix}{n:03d}", room, lang, wording):
                        wanted[(lang, segment)] = None
        for room in rooms:
            for segment in announcement_segments(f"{(prefixes or ['A'])[0]}001", room, lang, wording):
                wanted[(lang, segment)] = None
    return list(wanted)


def _renderer(audio: AudioSettings, background: ThreadPoolExecutor | None = None) -> Any:
    from audio.service import make_renderer

    return make_renderer(audio, background)


async def cmd_warm(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    audio = settings.audio
    languages = _split(args.languages) or list(audio.languages)
    db_prefixes, db_rooms = ([], []) if (args.prefixes and args.rooms) else await catalog_from_database(settings)
    prefixes = _split(args.prefixes) or db_prefixes
    rooms = [parse_room(raw, i) for i, raw in enumerate(_split(args.rooms))] or db_rooms
    if not prefixes or not rooms:
        print("No services or rooms found in the database; pass --prefixes A,B and --rooms consult:1,counter:1.",
              file=sys.stderr)
        return 2
    numbers = args.numbers or audio.warm_numbers
    pieces = warm_segments(wording_from_settings(audio), languages, prefixes, numbers, rooms)
    renderer = _renderer(audio)
    failures: list[str] = []

    def render(piece: tuple[str, str]) -> None:
        lang, text = piece
        try:
            speech = renderer.speak(text, lang)
        except Exception as exc:
            failures.append(f"{lang} {text!r}: {exc}")
            return
        # warm-up is where online engines belong: fill the cache of a preferred online engine too
        for engine in renderer.engines:
            if engine.name == speech.engine:
                break
            if engine.online:
                renderer.render_with(engine, text, lang)

    print(f"warming {len(pieces)} pieces: {len(prefixes)} prefix(es) x {numbers} numbers, {len(rooms)} room(s), "
          f"languages {', '.join(languages)}; engines {', '.join(audio.engines)}", flush=True)
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool, tqdm(total=len(pieces), unit="clip") as bar:
        futures = [loop.run_in_executor(pool, render, piece) for piece in pieces]
        for future in asyncio.as_completed(futures):
            await future
            bar.update(1)
    if failures:
        print(f"{len(failures)} piece(s) could not be rendered, e.g. {failures[0]}", file=sys.stderr)
        return 1
    print(f"done: {len(pieces)} pieces in {audio.cache_dir}")
    return 0


def vocabulary(wording: Wording, lang: str) -> list[str]:
    """Every phrase a recorded set needs for `lang`: template words, room words, letters, number words."""
    from audio.engines.recorded import tokens

    phrases: dict[str, None] = {}

    def add_literals(template: str) -> None:
        for literal, _field in template_parts(template):
            for part in spoken_literal(literal).split(","):
                if part.strip():
                    phrases[part.strip().lower()] = None

    add_literals(wording.template(lang))
    kinds = set(DEFAULT_ROOM_TEMPLATES[lang]) | set((wording.room_templates or {}).get(lang, {}))
    for kind in sorted(kinds):
        template = wording.room_template(lang, kind)
        if template:
            add_literals(template)
    letters = sorted(set(VI_LETTERS.values())) if lang == "vi" else [chr(c) for c in range(65, 91)]
    for letter in letters:
        phrases[letter] = None
    for n in [*range(0, 1000), 1000, 1005, 2000, 10_000, 1_000_000, 1_000_000_000]:
        for token in tokens(wording.number_words(n, lang), lang):
            phrases[token] = None
    return list(phrases)


async def cmd_record_set(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from audio.engines.recorded import slug, write_manifest
    from audio.service import make_engine
    from audio.wav import read_frames, write_frames

    audio = settings.audio
    out = Path(args.out or audio.recorded_dir)
    engine = make_engine(args.engine, audio)
    if not engine.available():
        print(f"the engine {args.engine} is not available here", file=sys.stderr)
        return 2
    renderer = _renderer(audio)
    wording = wording_from_settings(audio)
    languages = _split(args.languages) or list(audio.languages)
    jobs = [(lang, phrase) for lang in languages for phrase in vocabulary(wording, lang)]
    manifests: dict[str, dict[str, str]] = {lang: {} for lang in languages}
    used: dict[str, set[str]] = {lang: set() for lang in languages}
    failed = 0
    for lang, phrase in tqdm(jobs, unit="phrase", desc="recording"):
        speech = await asyncio.to_thread(renderer.render_with, engine, phrase, lang)
        if speech is None:
            failed += 1
            continue
        name = slug(phrase)
        while name in used[lang]:
            name += "_"
        used[lang].add(name)
        write_frames(out / lang / f"{name}.wav", read_frames(speech.path))
        manifests[lang][phrase] = f"{name}.wav"
    for lang, phrases in manifests.items():
        write_manifest(out / lang, phrases)
    print(f"wrote {sum(len(p) for p in manifests.values())} clips to {out} ({failed} failed)")
    return 1 if failed else 0


async def cmd_say(args: argparse.Namespace, settings: Settings) -> int:
    from audio.service import make_builder
    from audio.wav import duration, read_frames, write_frames

    builder = make_builder(settings.audio, _renderer(settings.audio))
    announcement = await asyncio.to_thread(builder.build, args.number, parse_room(args.room))
    write_frames(Path(args.out), read_frames(announcement.path))
    for lang in announcement.languages:
        print(f"{lang}: {announcement.texts[lang]}  [{', '.join(sorted(set(announcement.engines[lang])))}]")
    for problem in announcement.problems:
        print(f"left out {problem}", file=sys.stderr)
    print(f"wrote {args.out} ({duration(Path(args.out)):.1f} s)")
    return 0


async def cmd_speaker(args: argparse.Namespace, settings: Settings) -> int:
    from clinicall_speaker import run_from_arguments

    return await run_from_arguments(args)
