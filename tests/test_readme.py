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
    first, last = map(float, lines[5].split())  # truncated BPTT: "42.86 summed over the first pass, 0.17 after"
    assert last < 0.01 * first  # it learns the delay
    assert (first, last) == (42.86, 0.17)  # the numbers the README's text gives
    sizes = lines[6].split()  # |dL/dH_t| at t = 30, 20, 1
    assert float(sizes[0]) > 100 * float(sizes[1]) > 100 * 100 * float(sizes[2])  # it vanishes going back
    assert sizes == ["1", "0.0043", "2.5e-06"]  # as the README's text says
    svg = (tmp_path / "rnn.svg").read_text()
    assert "t=1" in svg and "t=3" in svg and "W_hh" in svg


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_the_docs_reach_a_heading_or_file():
    # A link to a section that was renamed or a file that moved fails silently when read.
    root = README.parent
    docs = [README, root / "benchmarks" / "HISTORY.md"]
    for doc in docs:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            linked = (doc.parent / path).resolve() if path else doc
            assert linked.is_file(), f"{doc.name} links to {target}: no such file"
            if anchor:
                headings = re.findall(r"^#+ (.*)$", linked.read_text(), re.M)
                assert anchor in {_anchor(h) for h in headings}, f"{doc.name} links to {target}: no such heading"
