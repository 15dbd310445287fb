"""Audio for Loom: microphone, VAD, speech to text, wake phrase, text to speech."""

from __future__ import annotations

__all__: list[str] = []
