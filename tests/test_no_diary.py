"""The project's files speak of the project, not of its making: no development diary, no
numbered work periods, no commit hashes in prose or comments (history is ``git log`` and
CHANGELOG.md)."""
import re

from conftest import ROOT

DIARY = re.compile(r"\b(session|sessions|tried and not kept|NOTES\.md|experiment log)\b", re.I)
ORDINAL_PERIOD = re.compile(r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|\w+teenth|"
                            r"twentieth|twenty-\w+)\s+(session|round of work|period|stage)\b", re.I)
COMMIT_HASH = re.compile(r"(?<![\w/.-])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}(?![\w/.-])")


def prose_files():
    for pattern in ("*.md", "docs/**/*.md", "configs/**/*.yaml"):
        yield from ROOT.glob(pattern)


def comments(path):
    """Markdown whole; YAML and Python only their comments (``#`` to the end of the line)."""
    text = path.read_text()
    if path.suffix == ".md":
        return text
    return "\n".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)


def test_no_diary_in_docs_configs_or_code_comments():
    files = [*prose_files(), *ROOT.glob("benchmark/**/*.py"), *ROOT.glob("methods/*.py"),
             *ROOT.glob("encoders/*.py"), *ROOT.glob("evaluation/*.py")]
    assert not (ROOT / "NOTES.md").exists()
    found = []
    for path in files:
        text = comments(path)
        # CHANGELOG.md is the history and may name what a version removed (NOTES.md)
        for pattern in (ORDINAL_PERIOD, COMMIT_HASH) if path.name == "CHANGELOG.md" else (DIARY, ORDINAL_PERIOD, COMMIT_HASH):
            found += [f"{path.relative_to(ROOT)}: {m.group(0)!r}" for m in pattern.finditer(text)]
    assert not found, "\n".join(found)
