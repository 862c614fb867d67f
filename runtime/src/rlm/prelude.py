# The RLM scaffold, run once in every session before the model's first cell.
# It binds the helpers the system prompt promises, and keeps originals in a hidden module so
# that the host can restore them after a cell overwrites one.
import sys as _sys
import types as _types
import json as _json
from host import tools

def llm_query(prompt):
    """Ask a language model one question; returns its reply as a string."""
    return tools.llm_query(prompt=str(prompt))

def llm_query_batched(prompts):
    """Ask several questions at once (they run concurrently); returns a list of replies."""
    return tools.llm_query_batched(prompts=[str(p) for p in prompts])

def rlm_query(prompt, context=None):
    """Give a sub-task to a child agent with its own REPL; returns its answer as a string."""
    if context is not None and not isinstance(context, str):
        if isinstance(context, (list, tuple)):
            context = [str(c) for c in context]
        else:
            context = str(context)
    return tools.rlm_query(prompt=str(prompt), context=context)

def SHOW_VARS():
    """List the variables defined in the REPL, with their types."""
    hidden = _autodidact.NAMES | {"tools"}
    shown = {k: type(v).__name__ for k, v in globals().items() if not k.startswith("_") and k not in hidden}
    print(shown)
    return None

def FINAL(x):
    """Give the final answer and end the task."""
    answer["content"] = str(x)
    answer["ready"] = True

def FINAL_VAR(name):
    """Give the value of the variable `name` as the final answer."""
    FINAL(globals()[name] if isinstance(name, str) else name)

answer = {"content": "", "ready": False}

_autodidact = _types.ModuleType("_autodidact")
_autodidact.NAMES = {"llm_query", "llm_query_batched", "rlm_query", "SHOW_VARS", "FINAL", "FINAL_VAR", "context", "answer"}
_autodidact.saved = {n: globals()[n] for n in ("llm_query", "llm_query_batched", "rlm_query", "SHOW_VARS", "FINAL", "FINAL_VAR", "context", "tools")}

def _check(g):
    # Restores overwritten scaffold names; reports the answer. Printed as one JSON line.
    restored = []
    for name, value in _autodidact.saved.items():
        if g.get(name) is not value:
            g[name] = value
            restored.append(name)
    a = g.get("answer")
    if not (isinstance(a, dict) and "content" in a and "ready" in a):
        g["answer"] = {"content": "", "ready": False}
        restored.append("answer")
        a = g["answer"]
    content = a["content"]
    print(_json.dumps({"restored": restored, "ready": bool(a["ready"]), "content": content if isinstance(content, str) else str(content)}))

_autodidact.check = _check
_sys.modules["_autodidact"] = _autodidact
del _check, _types
