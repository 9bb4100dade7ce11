"""The README's install and test commands are the ones CI runs."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_commands():
    readme = ROOT.joinpath("README.md").read_text()
    ci = ROOT.joinpath(".ci", "run").read_text()
    for command in ("pip install -e '.[test]'", "python -m pytest"):
        assert f"\n{command}\n" in readme
        assert f"\n{command}\n" in ci


def test_every_command_in_the_readme_table_exists():
    from cometx_mirror.cli import main
    readme = ROOT.joinpath("README.md").read_text()
    table = readme.split("## Commands", 1)[1].split("##", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    named = {cell.strip(" `").split()[0] for row in rows for cell in row.split("|")[1].split(",")}
    assert len(named) > 10
    commands = set(main.list_commands(None))
    assert named <= commands, named - commands
