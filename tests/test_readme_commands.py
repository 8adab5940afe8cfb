"""Every command the README shows parses, explains itself, and the evaluation commands really run.

The commands are read from README.md itself (code blocks and inline code that start with
``cardiogate``, ``.venv/bin/cardiogate`` or ``make``), so a command added to the README is
checked without touching this file: ``<command up to its subcommand> --help`` must exit 0
with a usage line, and the whole command line must parse (pass-through commands are parsed
by the component's own parser). ``make demo`` and ``make test`` are only dry-run here
(``make -n``); ``eval rhythm`` (a few CinC 2017 records) and ``eval alarms`` (two short
patients) run for real, in the README's own form with smaller sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cardiogate.app.cli import build_parser, parse_command
from tests.conftest import REPO

README = REPO / "README.md"
PROGRAMS = ("cardiogate", ".venv/bin/cardiogate")
PLACEHOLDER = "..."
DATA = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data"))


@dataclass(frozen=True)
class Shown:
    """One command as the README shows it, without the program name."""

    text: str
    args: tuple[str, ...]

    @property
    def elided(self) -> bool:
        return PLACEHOLDER in self.args


def _pieces(text: str) -> list[list[str]]:
    """Shell words of each `;`-separated command on a line, comments and VAR=value prefixes dropped."""
    out = []
    for piece in text.split(";"):
        try:
            words = shlex.split(piece, comments=True)
        except ValueError:
            continue
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
            words = words[1:]
        if words:
            out.append(words)
    return out


def readme_snippets(text: str) -> list[str]:
    """Lines of shell code blocks, then inline code spans outside the blocks."""
    snippets: list[str] = []
    fence = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```", re.M | re.S)
    for block in fence.finditer(text):
        if block.group(1) in ("", "bash", "sh", "shell", "console"):
            snippets += block.group(2).splitlines()
    prose = fence.sub("", text)
    snippets += re.findall(r"`([^`\n]+)`", prose)
    return snippets


def readme_commands(text: str) -> tuple[list[Shown], list[str]]:
    """The ``cardiogate`` commands and the ``make`` targets the README shows, each once, in order."""
    commands: dict[tuple[str, ...], Shown] = {}
    targets: dict[str, None] = {}
    for snippet in readme_snippets(text):
        for words in _pieces(snippet):
            if words[0] in PROGRAMS:
                args = tuple(words[1:])
                commands.setdefault(args, Shown(" ".join(["cardiogate", *args]), args))
            elif words[0] == "make":
                targets.update(dict.fromkeys(w for w in words[1:] if not w.startswith("-") and "=" not in w))
    return list(commands.values()), list(targets)


COMMANDS, MAKE_TARGETS = readme_commands(README.read_text(encoding="utf-8"))


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def walk(parser: argparse.ArgumentParser, args: tuple[str, ...] | list[str]) -> tuple[
        list[str], argparse.ArgumentParser, list[str]]:
    """Follow subcommand names through ``parser``: (the words up to the last one, its parser, the rest)."""
    args = list(args)
    done = 0
    while (sub := _subparsers(parser)) is not None:
        i = done
        while i < len(args) and args[i].startswith("-") and args[i] != PLACEHOLDER:
            action = parser._option_string_actions.get(args[i].split("=", 1)[0])
            i += 1 if action is None or action.nargs == 0 or "=" in args[i] else 2
        if i >= len(args) or args[i] not in sub.choices:
            break
        parser, done = sub.choices[args[i]], i + 1
    return args[:done], parser, args[done:]


@dataclass(frozen=True)
class Delegate:
    """The component parser a pass-through command hands its arguments to."""

    prefix: tuple[str, ...]
    parse: Callable[[list[str]], object]
    parser: Callable[[], argparse.ArgumentParser] | None


def delegate_of(sub: argparse.ArgumentParser) -> Delegate:
    func = sub.get_default("func").__name__
    if func == "_cmd_cloud_admin":
        from cardiogate.cloud.admin import build_parser as admin_parser

        return Delegate((), lambda a: admin_parser().parse_args(a), admin_parser)
    if func == "_cmd_models_registry":
        from cardiogate.cloud.registry.cli import build_parser as registry_parser

        return Delegate((sub.get_default("registry_action"),), lambda a: registry_parser().parse_args(a),
                        registry_parser)
    action = sub.prog.split()[-1]
    if func == "_cmd_models_train" and action in ("train-edge", "distill-rhythm"):
        pytest.importorskip("torch", reason=f"`models {action}` needs the [models] extra, as the README says")
        if action == "train-edge":
            from cardiogate.models.rhythm.train_edge import parse
        else:
            from cardiogate.models.rhythm.distill import parse
        return Delegate((), parse, None)
    if func == "_cmd_models_train" and action == "train-risk":
        from cardiogate.models.haim.train import build_parser as risk_parser

        return Delegate((), lambda a: risk_parser().parse_args(a), risk_parser)
    if func == "_cmd_models_train" and action == "search-risk":
        from cardiogate.models.haim.search import build_parser as search_parser

        return Delegate((), lambda a: search_parser().parse_args(a), search_parser)
    if func == "_cmd_models_train" and action == "retrain":
        from cardiogate.models.haim.retrain import build_parser as retrain_parser

        return Delegate((), lambda a: retrain_parser().parse_args(a), retrain_parser)
    raise AssertionError(f"pass-through command {func} has no parser check in {Path(__file__).name}: add it")


def _parses(parse: Callable[[list[str]], object], args: list[str]) -> str | None:
    """None when ``args`` parse, else what the parser said."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parse(args)
    except SystemExit as exc:
        return f"exit {exc.code}: {err.getvalue().strip()}"
    return None


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cardiogate", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def _help_paths() -> list[tuple[str, ...]]:
    parser = build_parser()
    paths: dict[tuple[str, ...], None] = {}
    for shown in COMMANDS:
        path, _, _ = walk(parser, shown.args)
        paths[tuple(path)] = None
    return list(paths)


def test_the_readme_shows_the_commands_this_file_checks() -> None:
    shown = {c.text for c in COMMANDS}
    assert len(COMMANDS) >= 12, shown
    for expected in ("eval rpeaks", "eval rhythm", "eval alarms", "sim run", "gateway run", "cloud run", "demo"):
        assert any(c.args[:len(expected.split())] == tuple(expected.split()) for c in COMMANDS), expected
    assert {"demo", "test"} <= set(MAKE_TARGETS)


def test_the_extractor_reads_blocks_inline_code_chains_and_comments() -> None:
    text = ("Run `cardiogate verify --truth t.jsonl` or `make proto`.\n```bash\n"
            "DURATION=30 make demo   # comment\n.venv/bin/cardiogate a b --x 1; .venv/bin/cardiogate c ...\n```\n"
            "```toml\ncardiogate = 1\n```\n")
    commands, targets = readme_commands(text)
    assert [c.args for c in commands] == [("a", "b", "--x", "1"), ("c", "..."), ("verify", "--truth", "t.jsonl")]
    assert [c.elided for c in commands] == [False, True, False]
    assert targets == ["demo", "proto"]


@pytest.mark.parametrize("path", _help_paths(), ids=lambda p: " ".join(p) or "cardiogate")
def test_every_readme_command_explains_itself(path: tuple[str, ...]) -> None:
    needs_torch = path[:2] in (("models", "train-edge"), ("models", "distill-rhythm"))
    if needs_torch and importlib.util.find_spec("torch") is None:
        pytest.skip(f"`models {path[1]}` needs the [models] extra (torch), as the README says")
    result = run_cli(*path, "--help")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage:" in result.stdout


# A help request exits while parsing; the --help test above runs those.
TO_PARSE = [c for c in COMMANDS if "--help" not in c.args and "-h" not in c.args]


@pytest.mark.parametrize("shown", TO_PARSE, ids=lambda c: c.text)
def test_every_readme_command_parses(shown: Shown) -> None:
    parser = build_parser()
    path, reached, rest = walk(parser, shown.args)
    passthrough = bool(reached.get_default("passthrough"))
    if shown.elided:
        # `models publish ...`: every word before the placeholder must name a subcommand.
        before = rest[:rest.index(PLACEHOLDER)]
        if passthrough:
            delegate = delegate_of(reached)
            assert delegate.parser is not None
            _, _, left = walk(delegate.parser(), [*delegate.prefix, *before])
            before = left
        assert not [w for w in before if not w.startswith("-")], f"unknown subcommand in {shown.text}"
        return
    problem = _parses(parse_command, list(shown.args))
    assert problem is None, f"{shown.text}: {problem}"
    if passthrough:
        ns = parse_command(list(shown.args))
        delegate = delegate_of(reached)
        problem = _parses(delegate.parse, [*delegate.prefix, *ns.args])
        assert problem is None, f"{shown.text}: {problem}"
    assert path, shown.text


def test_a_readme_command_that_does_not_parse_is_caught() -> None:
    for bad in (("eval", "rhythm", "--data", "d", "--no-such-flag"), ("eval", "alarms", "--patients", "many")):
        assert _parses(parse_command, list(bad)) is not None


@pytest.mark.parametrize("target", MAKE_TARGETS)
def test_every_readme_make_target_exists(target: str) -> None:
    result = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def _readme_command(*path: str) -> list[str]:
    found = [list(c.args) for c in COMMANDS if c.args[:len(path)] == path and not c.elided]
    assert found, f"the README no longer shows `cardiogate {' '.join(path)}`"
    return found[0]


def _with(args: list[str], **values: str) -> list[str]:
    """``args`` with each ``--option``'s value replaced (or the option added)."""
    out = list(args)
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if flag in out:
            out[out.index(flag) + 1] = value
        else:
            out += [flag, value]
    return out


def _cinc2017() -> Path:
    folder = DATA / "cinc2017"
    if not (folder / "REFERENCE.csv").is_file():
        pytest.skip(f"CinC 2017 is not in {folder} (set CARDIOGATE_DATA_DIR)")
    return folder


def test_eval_rhythm_as_the_readme_shows_it_scores_each_artifact(tmp_path: Path) -> None:
    out = tmp_path / "rhythm.json"
    args = _with(_readme_command("eval", "rhythm"), data=str(_cinc2017()), json=str(out), limit="5")
    result = run_cli(*args, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert (summary["records"], summary["split"], summary["limit"]) == (5, "validation", 5)
    assert "rhythm-v1.fp32" in summary["artifacts"] and "rhythm-v1.int8" in summary["artifacts"]
    for name, entry in summary["artifacts"].items():
        assert set(entry["f1"]) == {"N", "A", "O", "~"}, name
        assert all(0.0 <= v <= 1.0 for v in entry["f1"].values()), entry["f1"]
        assert 0.0 <= entry["mean_f1_nao"] <= 1.0
        assert len(entry["confusion"]) == 4 and sum(map(sum, entry["confusion"])) == 5
        assert 0 <= entry["unreadable"] <= 5
        assert entry["latency_ms_p50"] is None or entry["latency_ms_p50"] > 0
        assert name in result.stdout  # the table names every artifact


def test_eval_alarms_as_the_readme_shows_it_alarms_on_every_critical_event(tmp_path: Path) -> None:
    out = tmp_path / "alarms.json"
    args = _with(_readme_command("eval", "alarms"), patients="2", minutes="1", json=str(out))
    result = run_cli(*args, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report) >= {"critical", "false_alarms", "rhythm_model", "cpu_s"}
    critical = report["critical"]
    assert critical["expected"] == 6 and critical["detected"] == 6
    assert {e["condition"] for e in critical["events"]} == {"vt", "vf", "asystole", "hr_high", "hr_low", "spo2_low"}
    assert all(e["delay_s"] is not None and e["delay_s"] <= e["allowed_s"] for e in critical["events"])
    fa = report["false_alarms"]
    assert fa["patient_hours"] == pytest.approx(2 / 60, abs=1e-3)
    assert fa["physiological_alarms"] >= 0
    assert fa["per_patient_hour"] == pytest.approx(fa["physiological_alarms"] / fa["patient_hours"], rel=1e-3)
    assert fa["upper95_per_patient_hour"] > fa["per_patient_hour"]
    assert "critical events alarmed in time: 6/6" in result.stdout
