"""Keeps `--dist loadgroup` grouping tests by their `xdist_group` mark.

pytest-xdist (3.8) tells its scheduler a test's group by appending
"@GROUP" to the test's node id, written to `item._nodeid`. pytest 9.2 keeps
node ids in `item._id` instead, so the suffix is silently lost: every
grouped test is then scheduled on its own, and each xdist worker builds the
group's expensive module fixtures again (pytest-dev/pytest-xdist#1386).
This plugin adds the suffix where xdist's did not reach; with a pytest or
xdist that keep it, it changes nothing.
"""

import pytest


def group_of(item):
    """The group name xdist gives `item` ("a_b" for groups a and b), or None."""
    names = {str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
             for mark in item.iter_markers("xdist_group")}
    return "_".join(sorted(names)) or None


@pytest.hookimpl(trylast=True)  # after xdist's own attempt
def pytest_collection_modifyitems(config, items):
    if not getattr(config.option, "loadgroup", False):  # set in xdist's workers only
        return
    for item in items:
        group = group_of(item)
        if group is None or item.nodeid.endswith(f"@{group}"):
            continue
        # pytest >= 9.2 reads the node id from the private `_id` (a NodeId);
        # parsing the suffixed string keeps it as the id's text.
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(f"{item.nodeid}@{group}")
