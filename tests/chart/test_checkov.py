"""checkov (kubernetes framework) on every example's rendering: no failed check outside the chart
README's documented list. checkov is heavy and lives in its own venv (`make checkov` installs it);
without it this test skips with the reason."""

from __future__ import annotations

import importlib.util

import pytest

from chartkit import REPO

_spec = importlib.util.spec_from_file_location("checkov_examples", REPO / "scripts" / "checkov_examples.py")
checkov_examples = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checkov_examples)


def test_the_readme_lists_each_excused_check_with_a_scope():
    excused = checkov_examples.excused_checks()
    assert {"CKV_K8S_15", "CKV_K8S_43", "CKV_K8S_35"} <= set(excused)
    assert excused["CKV_K8S_23"] == "gpu-engines" and excused["CKV_K8S_8"] == "helm-test"
    # Resources, probes of Deployments and NetworkPolicies are fixed, not excused.
    assert not {"CKV_K8S_10", "CKV_K8S_11", "CKV_K8S_12", "CKV_K8S_13", "CKV2_K8S_6"} & set(excused)


@pytest.mark.parametrize("example", checkov_examples.EXAMPLES, ids=lambda p: p.stem)
def test_no_failed_check_outside_the_documented_list(example):
    checkov = checkov_examples.checkov_binary()
    if checkov is None:
        pytest.skip("checkov is not installed (make checkov installs it into its own venv)")
    assert checkov_examples.scan(example, checkov, checkov_examples.excused_checks()) == []
