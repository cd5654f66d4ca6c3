"""Every input of the ``tycho`` command gets a clear error and exit 2, never a traceback:
flags, ``--set``, store URLs, filters, environment settings. Each case reported against
the CLI is here as a test; Hypothesis then throws arbitrary flags and values at the same
one error path (``tycho.cli.app``), in process."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from tycho import settings
from tycho.api import problems
from tycho.cli import app

REPO = Path(__file__).resolve().parents[3]
DIGITS = str(REPO / "pipelines" / "digits.yaml")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scratch working directory and index; no store or settings from the caller."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TYCHO_INDEX_DIR", str(tmp_path / "index"))
    for name in ("TYCHO_STORE", "TYCHO_TRUSTED_KEYS", "TYCHO_GRACE_SECONDS", "TYCHO_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = app.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(("argv", "says"), [
    (["validate", DIGITS, "--set", "train.epoch=5"], "--set train.epoch=5: stage 'train' has no param 'epoch'; "
                                                     "its params: batch_size, epochs"),
    (["validate", DIGITS, "--set", "train.epochs=["], "--set train.epochs=[: '[' is not a YAML value"),
    (["validate", DIGITS, "--set", "epochs"], "--set epochs: not STAGE.PARAM=VALUE"),
    (["runs", "--store", "foo://x"], "--store: the scheme foo:// cannot be served here"),
    (["runs", "--store", "gs://bucket/x"], "--store: gs:// cannot be opened here"),
    (["runs", "--store", "s3://user:secret@bucket/x"], "--store: the URL holds credentials"),
    (["stage-exec", "--invocation", "/nonexistent"], "--invocation: cannot read /nonexistent"),
    (["run", DIGITS, "--max-parallel", "-1"], "--max-parallel: -1 is out of range: give from 1 to 64"),
    (["run", DIGITS, "--max-parallel", "0"], "--max-parallel: 0 is out of range"),
    (["run", DIGITS, "--max-parallel", "two"], "--max-parallel: 'two' is not a whole number"),
    (["runs", "--filter", "test_accuracy >>= 1"], "--filter: expected a value but found '>='"),
    (["runs", "--since", "yesterday"], "--since: 'yesterday': expected a number and a unit"),
    (["runs", "--sort", "x:sideways"], "--sort: 'x:sideways': the direction after ':' is asc or desc"),
    (["runs", "--limit", "0"], "--limit: 0 is out of range"),
    (["board", "--port", "70000"], "--port: 70000 is out of range: give from 1 to 65535"),
    (["reproduce", "r1", "--on-cluster", "--timeout", "-5"], "--timeout: '-5' is out of range"),
    (["verify"], "tycho verify: nothing to verify"),
    (["verify", "--all", "--store", "/nonexistent-store"], "--store: no store at /nonexistent-store"),
    (["verify", "r1", "--all"], "--all: --all verifies the whole store"),
    (["runs", "--no-such-flag"], "tycho: unrecognized arguments: --no-such-flag"),
    (["no-such-command"], "command: invalid choice: 'no-such-command'"),
])
def test_a_bad_flag_is_one_line_naming_it_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                      says: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and says in err, err
    assert err.startswith("error ") and "Traceback" not in err and "(fix: " in err


def test_with_json_the_error_is_a_document_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "runs", "--store", "foo://x", "--json")
    doc = json.loads(out)
    assert code == 2 and doc["error"].startswith("--store: the scheme foo://")
    assert doc["problems"] == [{"path": "--store", "message": "the scheme foo:// cannot be served here",
                                "fix": "use one of (in lowercase): file://, s3://, gs://, gcs://, az://, abfs://, abfss://"}]
    code, out, _ = run(capsys, "run", DIGITS, "--json", "--max-parallel", "0")
    assert code == 2 and json.loads(out)["problems"][0]["path"] == "--max-parallel"
    code, out, _ = run(capsys, "validate", DIGITS, "--json", "--set", "nope.x=1")
    doc = json.loads(out)
    assert code == 2 and doc["valid"] is False and doc["problems"][0]["path"] == "--set nope.x=1"


def test_a_store_from_the_environment_is_checked_and_named(capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TYCHO_STORE", "ftp://old-server/store")
    code, _, err = run(capsys, "runs")
    assert code == 2 and "error TYCHO_STORE: the scheme ftp:// cannot be served here" in err


@pytest.mark.parametrize(("argv", "says"), [
    (["show", "deadbeef"], "error no run 'deadbeef' in "),
    (["lineage", "nonexistent"], "error 'nonexistent' is neither a sha256 digest nor RUN/STAGE/OUTPUT (`tycho show"),
])
def test_what_names_nothing_in_the_store_is_exit_2_saying_where_to_look(capsys: pytest.CaptureFixture[str],
                                                                       argv: list[str], says: str) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith(says) and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(("variable", "value"), [("TYCHO_GRACE_SECONDS", "soon"), ("TYCHO_GRACE_SECONDS", "-3"),
                                                 ("TYCHO_TRUSTED_KEYS", "/nonexistent.pem")])
def test_a_local_setting_that_cannot_be_read_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(problems.InvalidInput) as caught:
        (settings.grace_seconds if variable == "TYCHO_GRACE_SECONDS" else settings.trusted_key_files)({variable: value})
    assert caught.value.problems[0].path == variable


# ---- properties ----------------------------------------------------------------------------

def _flags(command: str) -> list[str]:
    sub = next(a for a in app.parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [o for a in sub.choices[command]._actions for o in a.option_strings if o not in ("-h", "--help")]


QUICK = ["validate", "explain", "run", "reproduce", "runs", "show", "checks", "diff", "lineage", "verify", "index",
         "stage-exec", "crd"]
"""Commands that, given the files below, end quickly whatever the flags (no server, no operator)."""
values = st.one_of(st.text(max_size=12), st.sampled_from([
    "-1", "0", "1", "1e309", "nan", "s3://b/x", "foo://x", "S3://b/x", "a=b", "+a.b=1", "x.y=[", "../..",
    "/nonexistent", "", "generate.count=3", "generate.count=.nan", "+generate.x=.inf", "generate.scale=1e400",
    "total.fail_marker=[[1]]", "+generate.a b=1", "generate.count=\n"]))


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_flags_end_in_a_result_or_one_error_never_a_traceback(capsys: pytest.CaptureFixture[str],
                                                                 data: st.DataObject) -> None:
    command = data.draw(st.sampled_from(QUICK))
    argv = [command]
    manifests = ["/nonexistent.yaml", str(REPO / "tests" / "unit" / "api" / "bad_manifests" / "cycle.yaml")]
    if command in ("validate", "explain"):  # these plan, they run nothing: a valid manifest too
        toy = Path("toy.yaml")
        toy.write_text((REPO / "tests" / "fixtures" / "toy" / "toy.yaml").read_text()
                       .replace("NOTES_URL", "file:///nonexistent/notes.txt").replace("path: code", "path: ."))
        manifests.append(str(toy.resolve()))
    if command in ("validate", "explain", "run"):
        argv.append(data.draw(st.sampled_from(manifests)))
    for _ in range(data.draw(st.integers(0, 4))):
        argv.append(data.draw(st.sampled_from([*_flags(command), "--json"])))
        if data.draw(st.booleans()):
            argv.append(data.draw(values))
    argv = [a for a in argv if a not in ("--on-cluster", "--container")]  # those reach out of this process
    try:
        code = app.main(argv)
    except SystemExit as done:  # --help / --version print and exit 0
        assert done.code == 0
        return
    out = capsys.readouterr()
    assert code in (0, 1, 2), (argv, out.err)
    assert "Traceback" not in out.err
    if "--json" in argv and out.out.strip():
        json.loads(out.out)


@hsettings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(settings.Settings.variables())),
                       st.text(max_size=12) | st.sampled_from(["on", "off", "0", "65536", "a,b", " "]), max_size=5))
def test_any_operator_settings_parse_or_name_each_bad_variable(env: dict[str, str]) -> None:
    try:
        settings.Settings.from_env(env)
    except problems.InvalidInput as bad:
        assert bad.problems and all(p.path in env and p.fix for p in bad.problems)


@hsettings(max_examples=200, deadline=None)
@given(st.text(max_size=40) | st.from_regex(r"[a-z0-9]{1,5}://[^\s]{0,20}", fullmatch=True))
def test_any_store_url_is_accepted_or_refused_naming_the_flag(url: str) -> None:
    from tycho.cli import inputs

    try:
        inputs.check_store_url(url, "--store")
    except problems.InvalidInput as bad:
        assert all(p.path == "--store" and p.fix for p in bad.problems)
