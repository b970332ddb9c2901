"""The rule for scripts outside the package: experiments/ holds what produced a figure in docs/, tools/ the reusable
helpers, and every script path the docs name exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("experiments", "tools")
# A script path as the docs write it, e.g. `python experiments/hevc_padding.py` or `bash scripts/test.sh`.
SCRIPT_PATH = re.compile(r"\b((?:scripts|benchmarks|experiments|tools)/[\w.-]+\.(?:py|sh))\b")


def _docs_text() -> dict[Path, str]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *(ROOT / f / "README.md" for f in FOLDERS)]
    return {page: page.read_text() for page in pages if page.is_file()}


def _scripts(folder: str) -> list[Path]:
    return sorted((ROOT / folder).glob("*.py"))


def test_every_script_path_named_in_the_docs_exists() -> None:
    missing = {f"{page.relative_to(ROOT)}: {path}" for page, text in _docs_text().items()
               for path in SCRIPT_PATH.findall(text) if not (ROOT / path).is_file()}
    assert not missing, sorted(missing)


def test_every_experiment_is_named_beside_the_figure_it_produced() -> None:
    docs = "\n".join(text for page, text in _docs_text().items() if page.parent.name == "docs")
    orphans = [script.name for script in _scripts("experiments") if f"experiments/{script.name}" not in docs]
    assert not orphans, f"experiments not cited by any page in docs/ (move them to tools/ or remove them): {orphans}"


def test_each_folder_readme_lists_its_scripts_and_each_docstring_runs_its_own_path() -> None:
    for folder in FOLDERS:
        readme = (ROOT / folder / "README.md").read_text()
        assert "**The rule:**" in readme
        for script in _scripts(folder):
            assert f"`{script.name}`" in readme, f"{folder}/README.md does not list {script.name}"
            doc = ast.get_docstring(ast.parse(script.read_text())) or ""
            assert f"python {folder}/{script.name}" in doc, f"{folder}/{script.name}: usage line names another path"
