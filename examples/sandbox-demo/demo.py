# A short tour of the sandbox: this file runs inside CPython-WASI, under the default policy.
import sys, os
print(f"Python {sys.version.split()[0]} on {sys.platform}")

import numpy as np
a = np.arange(12).reshape(3, 4)
print("numpy:", a.sum(axis=0).tolist())

import sympy as sp
x = sp.symbols("x")
print("sympy: d/dx x*sin(x) =", sp.diff(x * sp.sin(x), x))

# Deny by default: no host files, no network, no processes.
for what, attempt in [
    ("read /etc/passwd", lambda: open("/etc/passwd").read()),
    ("open a socket", lambda: __import__("socket").create_connection(("127.0.0.1", 80))),
    ("start a process", lambda: __import__("subprocess").run(["ls"])),
]:
    try:
        attempt()
        print(f"{what}: ALLOWED (unexpected)")
    except Exception as e:
        print(f"{what}: refused ({type(e).__name__})")

# The last expression is echoed, as in a REPL.
sum(i * i for i in range(10))
