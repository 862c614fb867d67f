"""Example domain tools for `autodidact run --tools examples/python-tools/tools.py`.

Each public function becomes a host tool that the agent's sandboxed code calls as
`tools.NAME(...)`. The schema comes from the type hints, the description from the docstring.
These run on the host, not in the sandbox, and only when the policy's [tools] allow list
names them (see policy.toml beside this file).
"""

import math


def circle_area(radius: float) -> float:
    """Area of a circle of the given radius."""
    return math.pi * radius * radius


def word_count(text: str, unique: bool = False) -> int:
    """Number of words in a text; with unique=True, of distinct words."""
    words = text.split()
    return len(set(words)) if unique else len(words)


def _helper():
    # Private: not a tool.
    return None
