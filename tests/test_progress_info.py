"""Terminal output: progress as plain lines off a terminal and as a bar on one (a pty), and
`landscape info`'s aligned, wrapped summary."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import sys
import termios
import threading

import h5py
import numpy as np

from landscape.cli import main
from landscape.progress import LineProgress


def test_line_progress_prints_a_line_per_tenth_or_30_seconds() -> None:
    stream, now = io.StringIO(), [0.0]
    with LineProgress(1000, "work", "HVP", stream, clock=lambda: now[0]) as bar:
        for _ in range(1000):
            now[0] += 0.001
            bar.update(1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in stream.getvalue()  # 9 tenths before the end, then "done"
    assert lines[0].startswith("work: 100/1000 HVP (10%)") and "ETA" in lines[0] and lines[-1].endswith("done")
    stream = io.StringIO()
    with LineProgress(None, "count", "HVP", stream, clock=lambda: now[0]) as bar:
        for _ in range(100):
            now[0] += 1.0
            bar.update(1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4 and lines[0].startswith("count: 30 HVP, 00:30 elapsed, 1 HVP/s")  # 30 s, 60, 90, done




def _hessian(tiny_checkpoint, out) -> list[str]:
    return ["hessian", str(tiny_checkpoint), "--top", "2", "--trace", "--trace-probes", "12", "--per-layer",
            "--max-examples", "100", "--device", "cpu", "-o", str(out), "--no-report"]


def test_progress_into_a_file_is_plain_bounded_lines(tiny_checkpoint, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("LANDSCAPE_QUIET", raising=False)
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        monkeypatch.setattr(sys, "stderr", stderr)
        assert main(_hessian(tiny_checkpoint, tmp_path / "h.h5")) == 0
    text = log.read_text()
    assert "\r" not in text and "\x1b" not in text
    lines = [line for line in text.splitlines() if "HVP" in line]
    # three bars (top-2, trace, per-layer): at most 10 lines each over a short run, one "done" each
    assert 3 <= len(lines) <= 30 and sum(line.endswith("done") or "done  [" in line for line in lines) == 3


def test_progress_on_a_terminal_is_a_bar_left_in_place(tiny_checkpoint, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("LANDSCAPE_QUIET", raising=False)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    chunks: list[bytes] = []

    def drain() -> None:  # keep the pty's buffer from filling while the run writes
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    with os.fdopen(slave, "w", closefd=True) as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        assert terminal.isatty()
        assert main(_hessian(tiny_checkpoint, tmp_path / "h.h5")) == 0
        terminal.flush()
    reader.join(timeout=10)
    os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert "\r" in text and "trace (hessian)" in text and "30/30" not in text
    assert "12/12" in text and "HVP/s" in text  # tqdm's bar with its rate, finished and left


def test_info_is_aligned_wrapped_and_complete(tmp_path, monkeypatch, capsys) -> None:
    path = tmp_path / "r.h5"
    long_text = "a fairly long value " * 40
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = "landscape-results"
        f.attrs["schema_version"] = 1
        f.attrs["command"] = long_text
        group = f.create_group("curvature/per_layer")
        group.attrs["hvp_mode_rule"] = "x" * 300  # one long word: broken to fit
        group.attrs["values"] = np.arange(1000, dtype=np.float64)
        group.attrs["a_rather_long_attribute_name_beyond_the_key_column"] = 3
        group.create_dataset("top_eigenvalue", data=np.linspace(0, 1, 50))
    monkeypatch.setenv("COLUMNS", "72")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(map(len, lines)) <= 72
    for key in ("schema", "schema_version", "command", "hvp_mode_rule", "values", "top_eigenvalue",
                "a_rather_long_attribute_name_beyond_the_key_column"):
        assert any(line.split()[:1] == [key] for line in lines), key
    assert "float64 (1000,): [0, 1, 2, 3, 4, 5, …]" in out and "/curvature/per_layer" in lines
    schema, version = (line for line in lines if line.split()[:1] in (["schema"], ["schema_version"]))
    assert schema.index("landscape") == version.index("1")  # values in one column
