"""Two notations for the same backpropagation: samples as columns or as rows.

Many courses stack the m samples as the columns of X, shape (n_x, m), and write a
layer as  Z = W.X + b  with W of shape (n_out, n_in) and b a column (n_out, 1).
fastbp stacks samples as rows, X of shape (m, n_x), and writes  Z = X.W + b  with W
of shape (n_in, n_out). Transposing one equation gives the other, so:

    W_col = W_fastbp.T,  Z_col = Z_fastbp.T,  A_col = A_fastbp.T,
    dW_col = dZ.A_prev^T = (A_prev^T.dZ_fastbp)^T = dW_fastbp.T,  db_col = db_fastbp.

This script writes the column-notation forward and backward pass of a 2-layer
network (tanh hidden layer, sigmoid output, binary cross-entropy) in numpy and
checks that it gives fastbp's numbers transposed. The loss averages over the batch
in both, so the output error is dZ2 = (A2 - Y) / m.

Run:  python examples/two_notations.py
"""

import numpy as np

import fastbp as fb

N_X, N_H, N_Y, M = 3, 4, 1, 5


def column_forward_backward(X, Y, W1, b1, W2, b2):
    """Column notation: X (n_x, m), Y (n_y, m), W (n_out, n_in), b (n_out, 1).

    Returns (loss, activations [A1, A2], gradients [dW1, db1, dW2, db2], dX)."""
    m = X.shape[1]
    Z1 = W1 @ X + b1
    A1 = np.tanh(Z1)
    Z2 = W2 @ A1 + b2
    A2 = 1.0 / (1.0 + np.exp(-Z2))
    loss = -np.sum(Y * np.log(A2) + (1 - Y) * np.log(1 - A2)) / m

    dZ2 = (A2 - Y) / m  # sigmoid + binary cross-entropy, mean over m
    dW2 = dZ2 @ A1.T
    db2 = dZ2.sum(axis=1, keepdims=True)
    dA1 = W2.T @ dZ2
    dZ1 = dA1 * (1 - A1**2)  # tanh'(z) = 1 - tanh(z)^2
    dW1 = dZ1 @ X.T
    db1 = dZ1.sum(axis=1, keepdims=True)
    dX = W1.T @ dZ1
    return loss, [A1, A2], [dW1, db1, dW2, db2], dX


def fastbp_model(seed=0):
    return fb.Sequential(
        [fb.Dense(N_H, activation="tanh", input_dim=N_X), fb.Dense(N_Y, activation="sigmoid")],
        loss="binary_cross_entropy",
        dtype="float64",
        seed=seed,
    )


def max_rel_diff(a, b):
    scale = max(np.abs(a).max(), np.abs(b).max())
    return float(np.abs(a - b).max() / scale) if scale else 0.0


def main(verbose=True, seed=0):
    rng = np.random.default_rng(seed)
    X_rows = rng.standard_normal((M, N_X))  # fastbp: one sample per row
    y = rng.integers(0, 2, size=(M, N_Y))

    model = fastbp_model(seed)
    W1, b1, W2, b2 = model.get_weights()
    # fastbp's side: loss and gradients, the output, the hidden activations, dX
    loss_fb, grads_fb = model.loss_and_gradients(X_rows, y)
    A2_fb = model.forward(X_rows)
    dA2 = (A2_fb - y) / (M * A2_fb * (1 - A2_fb))  # dL/dA2 for binary cross-entropy
    dX_fb = model.backward(dA2)
    hidden = fb.Sequential([fb.Dense(N_H, activation="tanh", input_dim=N_X)], dtype="float64")
    hidden.set_weights([W1, b1])
    A1_fb = hidden.forward(X_rows)

    # the column side: everything transposed, biases as columns
    loss_col, (A1, A2), grads_col, dX_col = column_forward_backward(
        X_rows.T, y.T, W1.T, b1[:, None], W2.T, b2[:, None]
    )

    diffs = {
        "loss": abs(loss_col - loss_fb) / abs(loss_fb),
        "A1": max_rel_diff(A1, A1_fb.T),
        "A2": max_rel_diff(A2, A2_fb.T),
        "dX": max_rel_diff(dX_col, dX_fb.T),
    }
    for name, g_col, g_fb in zip(["dW1", "db1", "dW2", "db2"], grads_col, grads_fb):
        # a weight gradient transposes; a bias gradient is the same numbers as a column
        diffs[name] = max_rel_diff(g_col, g_fb.T if g_fb.ndim == 2 else g_fb[:, None])
    if verbose:
        print(f"2-layer network {N_X}-{N_H}-{N_Y}, m = {M} samples, float64")
        print(f"loss: column notation {loss_col:.12f}, fastbp {loss_fb:.12f}")
        print("column notation against fastbp transposed, max relative difference:")
        for name, d in diffs.items():
            print(f"  {name:<4} {d:.1e}")
    return diffs


if __name__ == "__main__":
    main()
