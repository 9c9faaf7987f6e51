"""Generated sections of ``docs/benchmarks.md``: each lies between its own start and end markers."""

from __future__ import annotations

from pathlib import Path


def write_section(target: Path, lines: list[str]) -> None:
    """Put ``lines`` (a section: its start marker first, its end marker last) into ``target``.

    The section replaces the one between the same markers, or is appended when the page has
    none; the rest of the page is kept. A missing page is started with a ``# Benchmarks`` title.
    """
    start, end = lines[0], lines[-1]
    text = target.read_text() if target.is_file() else "# Benchmarks\n"
    block = "\n".join(lines)
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
