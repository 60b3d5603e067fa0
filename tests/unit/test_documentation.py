"""Every module's documentation says what its argument spec does: the same options, and for each the
same type, default, choices, aliases and required flag. The shared options come from one declaration
(module_utils/options.py) for both the spec and the doc fragment."""

from __future__ import annotations

import importlib

import pytest
import yaml

from ansible_collections.baseful.branching.plugins.doc_fragments.placement import ModuleDocFragment
from ansible_collections.baseful.branching.plugins.module_utils.options import PLACEMENT_OPTIONS

MODULES = ["database", "branch", "branch_info", "branch_expire", "branch_diff", "branch_merge"]
FRAGMENT_OPTIONS = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]


def documented_options(module) -> dict:
    documentation = yaml.safe_load(module.DOCUMENTATION)
    options = dict(documentation.get("options") or {})
    if "baseful.branching.placement" in documentation.get("extends_documentation_fragment", []):
        options.update(FRAGMENT_OPTIONS)
    return options


def facts(option: dict) -> dict:
    return {"type": option.get("type", "str"), "default": option.get("default"),
            "choices": list(option["choices"]) if option.get("choices") is not None else None,
            "aliases": sorted(option.get("aliases") or []), "required": bool(option.get("required", False))}


@pytest.mark.parametrize("name", MODULES)
def test_documentation_matches_the_argument_spec(name):
    module = importlib.import_module(f"ansible_collections.baseful.branching.plugins.modules.{name}")
    documented = documented_options(module)
    assert set(documented) == set(module.ARGUMENT_SPEC), name
    for option, spec in module.ARGUMENT_SPEC.items():
        assert facts(documented[option]) == facts(spec), f"{name}: {option}"
        assert documented[option].get("description"), f"{name}: {option} has no description"


def test_the_fragment_file_is_generated_from_the_shared_declaration():
    from ansible_collections.baseful.branching.tests.unit.fragment import FRAGMENT, fragment_text
    assert FRAGMENT.read_text() == fragment_text(), "run python3 tests/unit/fragment.py"


def test_the_fragment_is_the_shared_declaration():
    assert list(FRAGMENT_OPTIONS) == list(PLACEMENT_OPTIONS)
    for option, declared in PLACEMENT_OPTIONS.items():
        assert FRAGMENT_OPTIONS[option]["description"] == declared["description"]
        assert facts(FRAGMENT_OPTIONS[option]) == facts(declared)
