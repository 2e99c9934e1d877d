"""A soft two-tone "ding-dong" chime, generated with the standard library (no sound file shipped)."""

from __future__ import annotations

import array
import math

from audio.wav import RATE

# E5 then C5: the familiar public-address interval, each with a little octave overtone for warmth.
TONES = ((659.25, 0.0), (523.25, 0.42))
TONE_SECONDS = 0.9
PEAK = 0.32


def chime_frames() -> bytes:
    total = int((TONES[-1][1] + TONE_SECONDS) * RATE)
    mix = [0.0] * total
    for frequency, start in TONES:
        offset = int(start * RATE)
        for i in range(int(TONE_SECONDS * RATE)):
            t = i / RATE
            attack = min(1.0, t / 0.008)
            envelope = attack * math.exp(-4.2 * t)
            value = math.sin(2 * math.pi * frequency * t) + 0.25 * math.sin(4 * math.pi * frequency * t)
            mix[offset + i] += envelope * value
    peak = max(abs(v) for v in mix) or 1.0
    samples = array.array("h", (int(v / peak * PEAK * 32767) for v in mix))
    return samples.tobytes()
