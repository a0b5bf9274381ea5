"""Vanishing gradients: a deep sigmoid stack against a deep ReLU stack.

Both networks have 10 dense layers (9 hidden layers of 32 units and a 10-way
softmax output) and are applied, freshly initialised, to the standardised digits.
Backpropagation multiplies the error by W^T and by f'(Z) once per layer. The
sigmoid's derivative is at most 1/4, so with Glorot weights the error shrinks by
roughly that factor per layer and the first layer gets a gradient orders of
magnitude smaller than the last. ReLU's derivative is 1 on the active half, and He
initialisation keeps the error's scale from layer to layer.

Gradient norms are ||dW|| per layer from `model.loss_and_gradients(X, y)`.

Run:  python examples/vanishing_gradients.py
"""

import numpy as np

import fastbp as fb
import fastbp.datasets

DEPTH, WIDTH = 10, 32


def make_model(activation, seed=0):
    """DEPTH dense layers: DEPTH - 1 hidden ones of WIDTH units and a softmax output.
    Default initialisers: Glorot for sigmoid, He for ReLU."""
    layers = [fb.Dense(WIDTH, activation=activation, input_dim=64)]
    layers += [fb.Dense(WIDTH, activation=activation) for _ in range(DEPTH - 2)]
    layers += [fb.Dense(10)]
    return fb.Sequential(layers, loss="softmax_cross_entropy", dtype="float64", seed=seed)


def gradient_norms(activation, seed=0):
    """||dW|| of every layer, first to last, at initialisation."""
    X, y = fastbp.datasets.load_digits()
    X = fastbp.datasets.standardize(X)
    _, grads = make_model(activation, seed).loss_and_gradients(X, y)
    return np.array([np.linalg.norm(dW) for dW in grads[0::2]])


def main(verbose=True, seed=0):
    norms = {act: gradient_norms(act, seed) for act in ("sigmoid", "relu")}
    ratios = {act: n[0] / n[-1] for act, n in norms.items()}
    if verbose:
        print(f"||dW|| per layer, {DEPTH} layers of width {WIDTH}, digits (1797 samples)")
        print(f"{'layer':>5}  {'sigmoid':>10}  {'relu':>10}")
        for i in range(DEPTH):
            print(f"{i + 1:>5}  {norms['sigmoid'][i]:10.3e}  {norms['relu'][i]:10.3e}")
        print(f"first / last: sigmoid {ratios['sigmoid']:.2e}, relu {ratios['relu']:.2e}")
    return {"norms": norms, "ratios": ratios}


if __name__ == "__main__":
    main()
