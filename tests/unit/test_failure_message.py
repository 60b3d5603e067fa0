"""The roles' one-line failure report: which task, which item, and the module's message under the name
of the role variable that fed the refused parameter."""

from __future__ import annotations

from ansible_collections.baseful.branching.plugins.filter.failure_message import failure_message


def test_a_single_result_is_reported_with_its_task():
    assert failure_message({"failed": True, "msg": "boom"}, "Copy") == "Copy failed: boom"


def test_only_the_failed_items_of_a_loop_are_reported_each_under_its_quoted_label():
    result = {"failed": True, "results": [
        {"failed": False, "item": {"database": "shop", "name": "ok"}},
        {"failed": True, "item": {"database": "shop", "name": "a\nb"}, "msg": "name: 'a\\nb' is not a valid name"},
        {"failed": True, "item": "../etc", "msg": "name: '../etc' is not a valid name"},
    ]}
    message = failure_message(result, "Apply", {"name": "baseful_teardown_databases"})
    assert message == ('Apply failed: "shop/a\\nb": baseful_teardown_databases: \'a\\nb\' is not a valid name; '
                       '"../etc": baseful_teardown_databases: \'../etc\' is not a valid name')
    assert "\n" not in message


def test_placement_options_are_reported_under_the_placement_variable_unless_mapped_otherwise():
    refused = {"failed": True, "msg": "state_dir: '/etc/hostname' is a file"}
    assert failure_message(refused, "Create", {}, "baseful_placement") \
        == "Create failed: baseful_placement.state_dir: '/etc/hostname' is a file"
    assert failure_message(refused, "Create", {"state_dir": "baseful_expiry_state_dir"}, "baseful_placement") \
        == "Create failed: baseful_expiry_state_dir: '/etc/hostname' is a file"


def test_ansible_s_own_type_refusal_is_renamed_and_any_message_kept_on_one_line():
    result = {"failed": True, "msg": "argument 'tls' is of type str and we were unable to convert to bool"}
    assert failure_message(result, "Remove", {}, "baseful_placement") \
        == "Remove failed: argument 'baseful_placement.tls' is of type str and we were unable to convert to bool"
    assert failure_message({"failed": True, "msg": "MODULE FAILURE\nSee stdout"}, "Copy") == "Copy failed: MODULE FAILURE See stdout"


def test_messages_that_do_not_start_with_a_known_parameter_are_kept_as_they_are():
    result = {"failed": True, "msg": "source: no branch 'x'; Docker said: error"}
    assert failure_message(result, "Copy", {"name": "target"}) == "Copy failed: source: no branch 'x'; Docker said: error"
    assert failure_message({"failed": True, "results": []}, "Copy") == "Copy failed: see above"
