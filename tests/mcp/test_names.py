"""Capability names as MCP tool names: valid, unique, stable."""

from __future__ import annotations

import re

from loom_mcp import mcp_tool_name, tool_name_table

VALID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def test_server_tool_names_become_valid_tool_names():
    assert mcp_tool_name("everything:echo") == "everything__echo"
    assert mcp_tool_name("hello.greet") == "hello.greet"
    assert mcp_tool_name("odd name/with spaces!") == "odd_name_with_spaces_"
    assert mcp_tool_name("") == "_"


def test_long_names_are_cut_and_keep_a_digest():
    name = mcp_tool_name("srv:" + "x" * 300)
    other = mcp_tool_name("srv:" + "x" * 299 + "y")
    assert VALID.match(name) and VALID.match(other)
    assert len(name) == 128 and name != other


def test_collisions_get_numbered_suffixes_in_a_stable_order():
    table = tool_name_table(["a:b", "a__b", "a b", "a_b", "c"])
    assert all(VALID.match(name) for name in table)
    assert sorted(table.values()) == sorted(["a b", "a:b", "a_b", "a__b", "c"])
    assert table == {"a_b": "a b", "a__b": "a:b", "a__b-2": "a__b", "a_b-2": "a_b", "c": "c"}
    assert tool_name_table(reversed(list(table.values()))) == table
