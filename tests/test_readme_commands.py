"""The documentation's commands work as written against the demo.

Pages: README.md, every docs/*.md and bench/README.md (:data:`PAGES`). Convention: a ```sh block right after
an HTML comment starting with ``<!-- demo-tested`` is run here, against the demo stack (Redis, the simulated
publisher, two replicas, the balancer), from the repository root with ``.venv`` activated as README's Quick
start says. Setup blocks (``<!-- demo-tested: setup``), from any page, run before each block. The only changes
are the ports: the demo's 127.0.0.1:8080 and Redis's 6379 become free ports (tests never bind fixed ones).
Each block runs in one bash (``set -e -o pipefail``, so variables flow from line to line); every command must
exit 0 and its output must pass the check below that matches it. Streaming commands (``curl -N``,
``SUBSCRIBE``) run until a "Ctrl-C" (SIGINT) after a few seconds, which is how the pages say to end them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from stack import Stack

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
#: Every page whose commands are collected, as paths from the repository root.
PAGES = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")),
         "bench/README.md"]
TEXTS = {page: (ROOT / page).read_text(encoding="utf-8") for page in PAGES}
TESTED = re.compile(r"<!-- demo-tested([^>]*)-->\n```sh\n(.*?)```", re.S)
ANY_SH = re.compile(r"```sh\n(.*?)```", re.S)
STREAMING = re.compile(r"\bcurl -N\b|\bP?SUBSCRIBE\b")
STREAM_S = 8  # how long a streaming command runs before its "Ctrl-C"


def commands(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


class Block(NamedTuple):
    """A tested block: the page it is on, its number among that page's tested blocks, its commands."""

    page: str
    number: int
    lines: list[str]

    @property
    def name(self) -> str:
        return f"{self.page}#{self.number}"


def demo_blocks() -> list[Block]:
    blocks = []
    for page, text in TEXTS.items():
        found = [commands(block) for note, block in TESTED.findall(text) if "setup" not in note]
        blocks += [Block(page, number, lines) for number, lines in enumerate(found, 1)]
    return blocks


def setup_lines() -> list[str]:
    """Blocks marked ``<!-- demo-tested: setup ... -->`` (activate .venv, redis-cli's password) run first."""
    return [line for text in TEXTS.values() for note, block in TESTED.findall(text) if "setup" in note
            for line in commands(block)]


class Raced(Exception):
    """The demo published a new ranking between two commands that assume it did not: run the block again."""


def http(out: str) -> tuple[int, dict[str, str], str]:
    head, _, body = out.partition("\n\n")  # text mode: curl's CRLFs arrive as newlines
    status_line, *lines = head.splitlines()
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def check_fields(out: str, _: dict[str, str]) -> None:
    status, _, body = http(out)
    rows = json.loads(body)["rows"]
    assert status == 200 and 0 < len(rows) <= 10
    assert all(set(row) == {"rank", "code", "name", "surge_rate"} for row in rows), rows[0]


def check_304(out: str, env: dict[str, str]) -> None:
    status, headers, _ = http(out)
    if status == 200 and f'W/"{headers.get("x-kiwoom-ranking-id")}"' != env["etag"]:
        raise Raced
    assert status == 304, out


def check_resume(out: str, env: dict[str, str]) -> None:
    hello = json.loads(out.split("event: hello")[1].split("data: ", 1)[1].splitlines()[0])
    assert hello["resumed_from"] == env["id"]
    assert out.count("event: ranking") >= 2, "the two rankings after the id are replayed"


def is_json(key: str, value: object = None) -> Callable[[str, dict[str, str]], None]:
    def check(out: str, _: dict[str, str]) -> None:
        doc = json.loads(out)
        assert key in doc and (value is None or doc[key] == value), doc
    return check


def contains(*needles: str) -> Callable[[str, dict[str, str]], None]:
    def check(out: str, _: dict[str, str]) -> None:
        assert all(n in out for n in needles), f"{needles} not in:\n{out[:2000]}"
    return check


def matches(pattern: str) -> Callable[[str, dict[str, str]], None]:
    def check(out: str, _: dict[str, str]) -> None:
        assert re.fullmatch(pattern, out.strip()), out
    return check


def is_empty(out: str, _: dict[str, str]) -> None:
    assert out.strip() == ""


def history(order: str) -> Callable[[str, dict[str, str]], None]:
    def check(out: str, _: dict[str, str]) -> None:
        ids = [item["id"] for item in json.loads(out)["items"]]
        key = [tuple(map(int, i.split("-"))) for i in ids]
        assert ids and key == sorted(key, reverse=order == "desc")
    return check


# (pattern on the command as written on its page, check on its output). Every tested command needs one.
CHECKS: list[tuple[str, Callable[[str, dict[str, str]], None]]] = [
    (r"--raw GET 'kiwoom:\{kospi-surge\}:latest'", is_json("feed", "kospi-surge")),
    (r"XREVRANGE 'kiwoom:\{kospi-surge\}:history'", contains("seq", '"feed":"kospi-surge"')),
    (r"PSUBSCRIBE 'kiwoom:\{\*\}:updates'", contains("pmessage", '"feed":"')),
    (r"SUBSCRIBE 'kiwoom:\{kospi-surge\}:updates'", contains("message", '"feed":"kospi-surge"')),
    (r"GET kiwoom:publisher:status", is_json("state", "running")),
    (r"HGETALL kiwoom:feeds", contains("kospi-surge", "kosdaq-surge", '"tr":"opt10023"')),
    (r"GET 'kiwoom:\{kospi-surge\}:lease'", matches(r"[0-9a-f]{16}")),
    (r"curl -s http://127\.0\.0\.1:8080/v1/feeds$", is_json("feeds")),
    (r"limit=10&fields=code,name,surge_rate'$", check_fields),
    (r"^(etag|id)=\$\(", is_empty),
    (r"If-None-Match: \$etag", check_304),
    (r"history\?limit=20'$", history("desc")),
    (r"history\?order=asc&since=", history("asc")),
    (r"^curl -N http://\S+/events$", contains("event: hello", "event: snapshot")),
    (r"^curl -N '\S+/v1/events\?feeds=\S+'$",
     contains("event: hello", '"feed":"kospi-surge"', '"feed":"kosdaq-surge"')),
    (r'Last-Event-ID: \$id', check_resume),
    (r"/readyz; curl -s \S+/metrics \| grep kiwoom_api$", contains('"ready"', "kiwoom_api_sse_clients")),
]


def check_for(command: str) -> Callable[[str, dict[str, str]], None]:
    code = re.split(r"\s+# ", command, maxsplit=1)[0].strip()
    found = [check for pattern, check in CHECKS if re.search(pattern, code)]
    assert found, f"documented command without a check in {Path(__file__).name}: {command}"
    return found[0]


def test_every_block_that_talks_to_the_demo_is_tested() -> None:
    known = [*(block.lines for block in demo_blocks()), setup_lines()]
    untested = [f"{page}:\n{b}" for page, text in TEXTS.items() for b in ANY_SH.findall(text)
                if re.search(r"127\.0\.0\.1:8080|localhost:8080|redis-cli ", b)
                and not any(commands(b) == lines for lines in known)]
    assert not untested, "mark these blocks <!-- demo-tested --> (and give their commands a check):\n" + \
        "\n".join(untested)
    assert len(demo_blocks()) >= 6 and any("REDISCLI_AUTH" in line for line in setup_lines())
    for block in demo_blocks():
        for command in block.lines:
            check_for(command)


def test_the_pages_are_collected() -> None:
    """The split pages are read: README's setup, the contract's redis-cli block, the API's curl blocks."""
    pages = {block.page for block in demo_blocks()}
    assert {"docs/contract.md", "docs/api.md"} <= pages, pages
    assert "README.md" in PAGES and "bench/README.md" in PAGES and "docs/security.md" in PAGES


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("demo"), replicas=2, pace="demo", persist=False) as stack:
        yield stack


def run_block(block: list[str], stack: Stack, workdir: Path) -> tuple[list[str], dict[str, str]]:
    """Run the block's commands in one bash: each command's output (stdout and stderr), and the variables
    its ``name=$(...)`` lines assigned."""
    venv = "" if sys.prefix == sys.base_prefix else f". {Path(sys.prefix) / 'bin' / 'activate'}\n"
    setup = "\n".join(setup_lines()).replace(".demo/", f"{stack.data}/")
    script = [f"set -e -o pipefail\nexec 2>&1\ncd {ROOT}\n{setup}\n{venv}"]
    names = []
    for i, command in enumerate(block):
        line = command.replace("127.0.0.1:8080", f"127.0.0.1:{stack.lb_port}")
        line = re.sub(r"\bredis-cli ", f"redis-cli -p {stack.redis.port} ", line)
        if STREAMING.search(line):  # the "Ctrl-C": timeout's SIGINT, and its 124 is the expected end
            line = f"{{ timeout -s INT {STREAM_S} {line}\n}} || [ $? -eq 124 ]"  # newline: ends a # comment
        script.append(f"printf '\\n@@@{i}\\n'\n{line}")
        if assigned := re.match(r"^(\w+)=\$\(", command):
            names.append(name := assigned.group(1))
            script.append(f'printf %s "${name}" > {workdir / name}')
    script.append(f"printf '\\n@@@{len(block)}\\n'")
    # At a terminal `curl -N` draws no progress meter (its output is the terminal); captured, it would write
    # one to stderr, which is merged here, in the middle of events and even of a UTF-8 character.
    (workdir / ".curlrc").write_text("no-progress-meter\n")
    proc = subprocess.run(["bash", "-c", "\n".join(script)], capture_output=True, timeout=300, check=False,
                          env={**os.environ, "CURL_HOME": str(workdir)})
    # A stream cut by its "Ctrl-C" may end inside a character; newlines as text mode reads them.
    stdout = proc.stdout.decode(errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    parts = re.split(r"^@@@\d+\n", stdout, flags=re.M)
    assert proc.returncode == 0 and len(parts) == len(block) + 2, \
        f"exit {proc.returncode} after command {len(parts) - 2}: {block[max(0, len(parts) - 2)]!r}\n{stdout}"
    return [part.removesuffix("\n") for part in parts[1:-1]], {name: (workdir / name).read_text() for name in names}


@pytest.mark.parametrize("block", demo_blocks(), ids=lambda b: b.name)
def test_documented_block_runs_against_the_demo(demo: Stack, block: Block, tmp_path: Path) -> None:
    for _attempt in range(5):
        outputs, env = run_block(block.lines, demo, tmp_path)
        try:
            for command, out in zip(block.lines, outputs, strict=True):
                check_for(command)(out, env)
        except Raced:
            continue
        return
    raise AssertionError("a new ranking arrived between the block's commands five times in a row")
