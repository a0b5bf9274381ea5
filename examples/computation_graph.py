"""The sigmoid neuron as a computation graph, gate by gate, and the same in fastbp.

f(w, x) = 1 / (1 + exp(-(w0*x0 + w1*x1 + w2)))  with  w = (2, -3, -3), x = (-1, -2).

The circuit is evaluated forward one node at a time, then the gradient of f is
pushed backward through every node with the chain rule (local derivative times the
gradient arriving from above). A one-unit sigmoid layer in fastbp computes the same
function: `forward` gives f, `backward([[1.0]])` gives df/dx, and `get_gradients()`
gives df/dw and df/db.

Run:  python examples/computation_graph.py
"""

import numpy as np

import fastbp as fb

W = np.array([[2.0], [-3.0]])  # (d_in, d_out) = (2, 1): w0, w1
B = np.array([-3.0])  # w2, the bias
X = np.array([[-1.0, -2.0]])  # one sample, a row


def by_hand(w=(2.0, -3.0, -3.0), x=(-1.0, -2.0)):
    """Forward and backward through the circuit's nodes, in plain numpy.

    Returns (nodes, grads): dicts name -> forward value and name -> df/d(node)."""
    w0, w1, w2 = w
    x0, x1 = x
    # forward, node by node
    n = {}
    n["w0*x0"] = w0 * x0
    n["w1*x1"] = w1 * x1
    n["sum"] = n["w0*x0"] + n["w1*x1"] + w2
    n["neg"] = -n["sum"]
    n["exp"] = np.exp(n["neg"])
    n["+1"] = n["exp"] + 1.0
    n["1/z"] = 1.0 / n["+1"]
    # backward: each gradient is (local derivative) * (gradient from above)
    g = {"1/z": 1.0}
    g["+1"] = -1.0 / n["+1"] ** 2 * g["1/z"]  # d(1/z)/dz = -1/z^2
    g["exp"] = 1.0 * g["+1"]  # d(z+1)/dz = 1
    g["neg"] = n["exp"] * g["exp"]  # d(e^z)/dz = e^z
    g["sum"] = -1.0 * g["neg"]  # d(-z)/dz = -1
    g["w0*x0"] = g["w1*x1"] = g["w2"] = g["sum"]  # a sum passes the gradient on
    g["w0"], g["x0"] = x0 * g["w0*x0"], w0 * g["w0*x0"]  # a product swaps its inputs
    g["w1"], g["x1"] = x1 * g["w1*x1"], w1 * g["w1*x1"]
    return n, g


def with_fastbp():
    """The same neuron as fb.Dense(1, activation='sigmoid'): (f, dX, dW, db)."""
    model = fb.Sequential(
        [fb.Dense(1, activation="sigmoid", input_dim=2)], loss="mse", dtype="float64"
    )
    model.set_weights([W, B])
    out = model.forward(X)
    dX = model.backward([[1.0]])  # df/df = 1: backpropagate f itself
    dW, db = model.get_gradients()
    return out[0, 0], dX[0], dW[:, 0], db


def main(verbose=True):
    nodes, grads = by_hand()
    f, dX, dW, db = with_fastbp()
    if verbose:
        print("node        forward   gradient df/d(node)")
        for name in nodes:
            print(f"{name:<10} {nodes[name]:9.4f} {grads[name]:9.4f}")
        print(
            "inputs:  "
            + "  ".join(f"df/d{k} = {grads[k]:.4f}" for k in ("w0", "w1", "w2", "x0", "x1"))
        )
        print(f"\nfastbp:  f = {f:.4f}")
        print(f"         dX = backward([[1]]) = {np.round(dX, 4)}")
        print(f"         dW = {np.round(dW, 4)}   db = {np.round(db, 4)}")
    return {"nodes": nodes, "grads": grads, "f": f, "dX": dX, "dW": dW, "db": db}


if __name__ == "__main__":
    main()
