"""The documentation against the code, for the kinds of stale passage that
crept in before (issue 22, part 1): a guarantee the front doors do not list,
a log line the docs quote that the code no longer writes, a large submission
said to end in the dead-letter queue although resume publishes it, a retry
setting described as counting what it does not count; and the homes of
facts that were written in several places (the README's length, the table
of log lines against the code). No AWS, no build: the
docs, the template and the source files as text."""

from __future__ import annotations

import re
import tomllib

from edr_tools.capacity import report
from template_support import DOCS, ROOT, load_template

GUARANTEES = ROOT / "docs" / "guarantees.md"
README = ROOT / "README.md"
DOCS_README = ROOT / "docs" / "README.md"


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lowercase, punctuation other
    than `-` dropped, spaces become `-`."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def sections(level: str = "## ") -> list[str]:
    return [line[len(level) :] for line in GUARANTEES.read_text().splitlines() if line.startswith(level)]


def paragraphs(path) -> list[str]:
    """The paragraphs of a page outside fenced code, each on one line; a list
    item and a table row are paragraphs of their own."""
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    parts = re.split(r"\n\s*\n|\n(?=\s*(?:[-*] |\| |\d+\. ))", text)
    return [re.sub(r"\s+", " ", part).strip() for part in parts if part.strip()]


# --- Links ----------------------------------------------------------------------


def headings_anchors(path) -> set[str]:
    """Every anchor GitHub gives the page's headings (a repeated heading's
    gets `-1`, `-2`, ...), outside fenced code."""
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        base = anchor(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def test_every_link_to_a_section_finds_its_heading():
    """A link `page.md#anchor` (or `#anchor`) in README.md, CHANGELOG.md and
    docs/ names a heading that exists: moving a fact to its one home must
    not leave links to where it was."""
    broken = []
    for path in [*DOCS, CHANGELOG]:
        for target, fragment in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", path.read_text()):
            page = (path.parent / target).resolve() if target else path
            if page.suffix == ".md" and fragment not in headings_anchors(page):
                broken.append(f"{path.name}: {target}#{fragment}")
    assert not broken, f"links to headings that do not exist: {broken}"


# --- The guarantees, listed where a reader starts -----------------------------


def test_the_parser_finds_the_nine_guarantees():
    numbered = [s for s in sections() if re.match(r"\d+\. ", s)]
    assert len(numbered) >= 9, numbered
    assert anchor("4. Invalid input is dropped, not retried, and not lost silently") == (
        "4-invalid-input-is-dropped-not-retried-and-not-lost-silently"
    )


def test_every_guarantee_is_linked_from_the_readme_and_the_docs_index():
    """Each `## ` section of docs/guarantees.md (the nine numbered guarantees,
    both record formats, the hostile sensor, AWS, what is not guaranteed) is
    linked from README.md and docs/README.md (both lists once stopped at 8 of
    9)."""
    readme, index = README.read_text(), DOCS_README.read_text()
    missing = []
    for section in sections():
        link = f"guarantees.md#{anchor(section)}"
        if f"docs/{link}" not in readme:
            missing.append(f"README.md: {section}")
        if link not in index:
            missing.append(f"docs/README.md: {section}")
    assert not missing, f"guarantees not linked: {missing}"


README_MAX_LINES = 100


def test_the_readme_is_a_front_door_of_at_most_100_lines_one_line_per_guarantee():
    """README.md says what the function does, how to run, test and deploy it
    and what it guarantees, in at most 100 lines (issue 22: it had grown to
    164, restating the contract and the guarantees); each numbered guarantee
    is one line, a numbered list item that links its section, and the
    details live behind the link."""
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines, at most {README_MAX_LINES}"
    for heading in ("## What it guarantees", "## Run it and test it", "## Deploy"):
        assert heading in lines, f"README.md has no {heading!r} section"
    numbered = [s for s in sections() if re.match(r"\d+\. ", s)]
    for section in numbered:
        number = section.split(".")[0]
        items = [line for line in lines if line.startswith(f"{number}. ")]
        assert len(items) == 1 and f"docs/guarantees.md#{anchor(section)}" in items[0], (
            f"README.md: guarantee {section!r} is not one line '{number}. [...](docs/guarantees.md#...)': {items}"
        )


# --- Log lines ------------------------------------------------------------------

RUST_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)


def unescape(literal: str) -> str:
    """A Rust string literal's text: `\\` line continuations joined, quotes
    and backslashes unescaped."""
    literal = re.sub(r"\\\n\s*", "", literal)
    return literal.replace('\\"', '"').replace("\\'", "'").replace("\\\\", "\\")


def macro_arguments(text: str, open_paren: int) -> str:
    """The text between the parenthesis at `open_paren` and its match,
    parentheses inside string literals left alone."""
    depth, i = 0, open_paren
    while i < len(text):
        if text[i] == '"':
            i = RUST_STRING.match(text, i).end()
            continue
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_paren + 1 : i]
        i += 1
    raise AssertionError(f"unbalanced macro at {open_paren}")


def top_level_arguments(arguments: str) -> list[str]:
    """A macro's arguments split at the commas outside string literals,
    brackets and `//` comments."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(arguments):
        c = arguments[i]
        if c == '"':
            i = RUST_STRING.match(arguments, i).end()
            continue
        if arguments.startswith("//", i):
            end = arguments.find("\n", i)
            arguments = arguments[:i] + (arguments[end:] if end >= 0 else "")
            continue
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(c, 0)
        if c == "," and depth == 0:
            parts.append(arguments[start:i].strip())
            start = i + 1
        i += 1
    parts.append(arguments[start:].strip())
    return [part for part in parts if part]


def log_lines() -> list[tuple[str, str, list[str]]]:
    """Every line the function logs: (message, level, field names), from
    each `tracing::<level>!` call in src/. The message is the first string
    literal argument (a `"{CONST}"` message read from the `const` of that
    file); the fields are the arguments before it, `name = value`, `%name`,
    `?name` or `name`."""
    lines = []
    for path in sorted((ROOT / "src").rglob("*.rs")):
        text = path.read_text()
        consts = {
            m.group(1): unescape(m.group(2))
            for m in re.finditer(r'const (\w+): &str =\s*"((?:[^"\\]|\\.)*)"', text, re.S)
        }
        for call in re.finditer(r"tracing::(trace|debug|info|warn|error)!\s*(?=\()", text):
            arguments = top_level_arguments(macro_arguments(text, call.end()))
            literal = next((i for i, a in enumerate(arguments) if RUST_STRING.fullmatch(a)), None)
            if literal is None:
                continue
            message = unescape(RUST_STRING.fullmatch(arguments[literal]).group(1))
            named = re.fullmatch(r"\{(\w+)\}", message)
            message = consts.get(named.group(1), message) if named else message
            fields = [re.match(r"[%?]?\s*([\w.]+)", a).group(1) for a in arguments[:literal]]
            lines.append((message, call.group(1), fields))
    return lines


def log_messages() -> dict[str, str]:
    """Every message the function logs, with its level."""
    return {message: level for message, level, _ in log_lines()}


def words(text: str) -> list[str]:
    return re.findall(r"[\w'-]+", text.lower())


def test_the_parser_reads_the_code_log_messages():
    messages = log_messages()
    assert messages["batch processed"] == "info"
    assert messages["invalid events dropped; the others are published"] == "warn"
    assert any(m.startswith("records of one submission were acknowledged") for m in messages)
    assert len(messages) >= 20, messages
    fields = {message: fields for message, _, fields in log_lines()}
    assert fields["submission rejected"] == ["message_id", "reason", "detail", "submission_id", "device_id"]
    (not_published,) = [f for m, f in fields.items() if m.startswith("submission not fully published")]
    assert not_published[-2:] == ["error_code", "error_message"], not_published


OPERATIONS = ROOT / "docs" / "operations.md"
LOG_TABLE_HEADER = "| message | level | fields | when |"


def log_table() -> list[tuple[str, str, list[str]]]:
    """docs/operations.md's table of log lines: (message, level, fields)
    per row; a message cut with a trailing `…` stands for every message it
    begins."""
    text = OPERATIONS.read_text()
    assert text.count(LOG_TABLE_HEADER) == 1, f"docs/operations.md has no table headed {LOG_TABLE_HEADER!r}"
    rows = []
    for line in text[text.index(LOG_TABLE_HEADER) :].splitlines()[2:]:
        if not line.startswith("| "):
            break
        message, level, fields = (cell.strip() for cell in line.split(" | ")[:3])
        message = re.fullmatch(r'\| "(.+)"', message).group(1)
        rows.append((message, level.lower(), re.findall(r"`([\w.]+)`", fields)))
    return rows


def test_every_log_line_of_the_code_is_in_the_table_with_its_level_and_fields():
    """docs/operations.md's table of log lines is the home of every line's
    message, level and fields: each `tracing` call in src/ has exactly one
    row with its message (or the start of it, cut with `…`), its level and
    its fields, in the code's order, and each row is a line the code writes
    (issue 22: they were one long sentence, which named some lines and
    missed others)."""
    code, table = log_lines(), log_table()

    def matches(row, line):
        cut = row[0].endswith(" …")
        return line[0].startswith(row[0][:-2]) if cut else line[0] == row[0]

    problems = []
    for line in code:
        rows = [row for row in table if matches(row, line)]
        if len(rows) != 1:
            problems.append(f"{len(rows)} rows for {line[0][:60]!r}")
        elif rows[0][1:] != line[1:]:
            problems.append(f"{line[0][:60]!r}: the table says {rows[0][1:]}, the code {line[1:]}")
    problems += [f"no such line in the code: {row[0]!r}" for row in table if not any(matches(row, c) for c in code)]
    assert not problems, "\n".join(problems)


def test_every_log_message_the_docs_quote_is_one_the_code_writes():
    """A quoted text ("…" or `…`) that starts with the first two words of a
    message the function logs is taken for a quote of a log line: it must be
    that message or a part of it (a trailing `…` marks a prefix). docs/local.md
    once quoted a warning, and a deadline rule, that the code no longer had."""
    messages = log_messages()
    openings = {tuple(words(m)[:2]) for m in messages}
    stale = []
    for path in DOCS:
        for paragraph in paragraphs(path):
            for quote in re.finditer(r'"([^"]+)"|`([^`]+)`', paragraph):
                text = quote.group(1) or quote.group(2)
                if len(words(text)) < 3 or tuple(words(text)[:2]) not in openings:
                    continue
                core = text.rstrip(" .…")
                if not any(core in message for message in messages):
                    stale.append(f"{path.name}: {text!r}")
    assert not stale, f"log lines quoted that the code does not write: {stale}"


# --- Large submissions and resume --------------------------------------------


def says_large_submissions_end_in_the_dlq(text: str) -> bool:
    return bool(
        re.search(r"dead-letter", text)
        and re.search(r"larger|does not fit|more events than|never (?:be )?published", text)
    )


def test_a_large_submission_is_never_said_to_end_in_the_dlq_without_resume(capsys):
    """Since resume, a submission larger than one invocation publishes from a
    standard queue over several deliveries; only from a FIFO queue or with
    `RESUME=off` is it retried until the dead-letter queue. Every passage
    of the docs, and the capacity plan, that ties large submissions to the
    dead-letter queue says so (docs/operations.md and the plan once said it
    was never published)."""
    stale = []
    for path in DOCS:
        for paragraph in paragraphs(path):
            if says_large_submissions_end_in_the_dlq(paragraph) and not re.search(r"resume", paragraph, re.I):
                stale.append(f"{path.name}: {paragraph[:120]}")
    assert report.main(["-N", "100000", "-E", "8", "-T", "60", "--max-events", "5000"]) == 0
    plan = " ".join(capsys.readouterr().out.split())
    assert says_large_submissions_end_in_the_dlq(plan), "the plan no longer says what a larger submission does"
    assert re.search(r"Resume=resend", plan) and re.search(r"FIFO", plan), "make capacity: " + plan[:200]
    assert not stale, f"passages that send large submissions to the dead-letter queue, resume unsaid: {stale}"


# --- Retry settings -------------------------------------------------------------


def test_max_attempts_is_described_as_not_counting_throttling():
    """`MAX_ATTEMPTS` counts failed sends, throttling not included (the
    publisher's `throttling_does_not_count_against_the_attempts`,
    src/config.rs): the template's description and every row of the docs
    that describes it say so (template.yaml and docs/deploy.md once said it
    counted every send)."""
    config = (ROOT / "src" / "config.rs").read_text()
    assert "throttling not counted" in config, "src/config.rs no longer says what MAX_ATTEMPTS counts"
    description = load_template((ROOT / "template.yaml").read_text())["Parameters"]["MaxAttempts"]["Description"]
    rows = [
        (path.name, p)
        for path in DOCS
        for p in paragraphs(path)
        if re.match(r"\| `(?:MaxAttempts|MAX_ATTEMPTS)` \|", p)
    ]
    assert {name for name, _ in rows} >= {"deploy.md", "contract.md"}, rows
    wrong = [name for name, row in [("template.yaml", description), *rows] if "throttling does not count" not in row]
    assert not wrong, f"MAX_ATTEMPTS described without 'throttling does not count' in {wrong}"


# --- Versions -------------------------------------------------------------------

CHANGELOG = ROOT / "CHANGELOG.md"
SECTIONS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def crate_version() -> str:
    return tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]


def test_the_changelog_keeps_a_changelog_and_has_the_crates_version():
    """CHANGELOG.md in Keep a Changelog 1.1.0's shape: `## [Unreleased]`
    first, then each version, newest first, with a date (or `Unreleased`
    while it is being made), and only its six kinds of change; the version
    in Cargo.toml is the newest one (a release bumps both)."""
    text = CHANGELOG.read_text()
    headings = re.findall(r"^## \[([^\]]+)\](.*)$", text, re.M)
    assert headings[0] == ("Unreleased", ""), headings[0]
    versions = []
    for version, rest in headings[1:]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
        assert re.fullmatch(r" - (\d{4}-\d{2}-\d{2}|Unreleased)", rest), f"{version}{rest}"
        versions.append(tuple(map(int, version.split("."))))
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions), versions
    assert ".".join(map(str, versions[0])) == crate_version(), "Cargo.toml's version has no CHANGELOG.md entry"
    kinds = set(re.findall(r"^### (.+)$", text, re.M))
    assert kinds <= SECTIONS, kinds - SECTIONS


def test_every_lock_file_records_the_crates_version():
    """Cargo.lock, benches/Cargo.lock and fuzz/Cargo.lock each record the
    crate's version; a bump that leaves one behind makes that build's
    `--locked` fail."""
    for lock in ("Cargo.lock", "benches/Cargo.lock", "fuzz/Cargo.lock"):
        packages = tomllib.loads((ROOT / lock).read_text())["package"]
        (ours,) = [p for p in packages if p["name"] == "edr-preprocessor"]
        assert ours["version"] == crate_version(), lock
