//! numpy and sympy are compiled into the guest and work.

mod common;

use common::*;

#[test]
fn numpy_works() {
    let mut s = session();
    assert_eq!(out(&mut s, "import numpy as np\nint(np.arange(10).reshape(2, 5).sum(axis=1)[1])"), "35");
    assert_eq!(out(&mut s, "float(np.linalg.det(np.array([[2.0, 0], [0, 3.0]])))"), "6.0");
}

#[test]
fn sympy_works() {
    let mut s = session();
    assert_eq!(out(&mut s, "import sympy as sp\nx = sp.symbols('x')\nsp.integrate(3*x**2, x)"), "x**3");
    assert_eq!(out(&mut s, "sp.diff(sp.sin(x)*x, x)"), "x*cos(x) + sin(x)");
}
