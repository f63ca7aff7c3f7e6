"""The README's code blocks run as written and print what their comments say."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_examples_run_and_print_what_they_say(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example saves a drawing
    blocks = python_blocks()
    assert len(blocks) >= 4
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:  # each on its own: a reader copies one block, not the README
            exec(compile(block, str(README), "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["-11.0", "33.0", "-22.0"]  # the first example's comments
    loss = float(lines[3].split()[0])
    assert loss < 0.1  # "7.03 at the start, 0.086 now"
    assert lines[4] == "(16, 16)"
    svg = (tmp_path / "rnn.svg").read_text()
    assert "t=1" in svg and "t=3" in svg and "W_hh" in svg
