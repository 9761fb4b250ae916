"""Reading launch files without launch/launch_ros installed: their syntax tree (test_venv_ament_prefix.py runs the
real ``ros2 launch`` where the venv has it)."""

from __future__ import annotations

import ast

from conftest import REPO_ROOT


def console_scripts() -> set[str]:
    """Names of the console scripts registered in setup.py."""
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=False):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return {ast.literal_eval(entry).split("=")[0].strip() for entry in value.elts}
    raise AssertionError("no console_scripts in setup.py")


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    """Every call of ``name(...)`` (plain name or attribute) in the tree."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == name) or (isinstance(func, ast.Attribute)
                                                                   and func.attr == name):
                found.append(node)
    return found


def keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)



def launch_arguments(tree: ast.AST) -> dict[str, str]:
    """The module's ``ARGUMENTS`` mapping (name -> description), which tracker.launch.py declares in a loop."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ARGUMENTS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("the launch file declares no ARGUMENTS")


def declared_arguments(tree: ast.AST) -> set[str]:
    """Names of the launch arguments: literal ``DeclareLaunchArgument("name", ...)`` calls, else the keys of
    :func:`launch_arguments`."""
    names = {ast.literal_eval(c.args[0]) for c in calls(tree, "DeclareLaunchArgument")
             if c.args and isinstance(c.args[0], ast.Constant)}
    return names or set(launch_arguments(tree))
