"""YAML loading that refuses a key given twice in one mapping (the configuration's loader)."""

from __future__ import annotations

import yaml


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping.

    Why: plain YAML keeps the last of two equal keys, so a pasted or mistyped second
    ``to_share:`` or ``cloak:`` would silently replace the first; a setting must never change
    without the user seeing it.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:  # type: ignore[override]
        seen: dict[object, int] = {}
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (lines {seen[key]} and {line}); keep one", key_node.start_mark
                )
            seen[key] = line
        return super().construct_mapping(node, deep)
