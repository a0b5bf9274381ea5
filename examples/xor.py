"""XOR: why a hidden layer is needed, a hand-made solution, and a learned one.

(a) A linear model  y_hat = X.w + b  cannot fit XOR. Least squares on the four
    points gives w = 0, b = 0.5: it predicts 0.5 everywhere, and the MSE loss
    1/(2N) sum (y - y_hat)^2 is 0.125. Gradient descent with fastbp reaches the same.
(b) One ReLU hidden layer with W = [[1, 1], [1, 1]], c = [0, -1] and a linear
    output w = [1, -2], b = 0 computes XOR exactly:  h = relu(X.W + c), y = h.w + b.
(c) A freshly initialised 2-4-1 network (tanh hidden, sigmoid output, binary
    cross-entropy) learns XOR from the four points.

Run:  python examples/xor.py
"""

import numpy as np

import fastbp as fb
import fastbp.datasets

X, Y_CLASS = fastbp.datasets.xor()  # [[0,0],[0,1],[1,0],[1,1]], [0,1,1,0]
Y = Y_CLASS.reshape(-1, 1).astype(float)  # targets as a column for the MSE loss


def least_squares():
    """The best linear fit in closed form: (w, b, mse loss)."""
    A = np.hstack([X, np.ones((len(X), 1))])
    coef, *_ = np.linalg.lstsq(A, Y, rcond=None)
    residual = Y - A @ coef
    return coef[:2, 0], coef[2, 0], float(np.sum(residual**2) / (2 * len(X)))


def linear_sgd(epochs=300, lr=0.5, seed=0):
    """A linear fastbp model trained by full-batch gradient descent: (predictions, loss)."""
    model = fb.Sequential(
        [fb.Dense(1, input_dim=2)], loss="mse", optimizer=fb.SGD(lr=lr), dtype="float64", seed=seed
    )
    model.fit(X, Y, epochs=epochs, batch_size=None, verbose=0)
    return model.predict(X)[:, 0], model.evaluate(X, Y)["loss"]


def hand_made():
    """The hand-set ReLU network's outputs on the four points."""
    model = fb.Sequential(
        [fb.Dense(2, activation="relu", input_dim=2), fb.Dense(1)], loss="mse", dtype="float64"
    )
    model.set_weights(
        [
            [[1, 1], [1, 1]],
            [0, -1],  # W (2, 2), c (2,)
            [[1], [-2]],
            [0],
        ]
    )  # w (2, 1), b (1,)
    return model.forward(X)[:, 0]


def learned(seed=0, epochs=2000, lr=0.5):
    """A 2-4-1 network trained from random weights: (probabilities, predicted classes)."""
    model = fb.Sequential(
        [fb.Dense(4, activation="tanh", input_dim=2), fb.Dense(1, activation="sigmoid")],
        loss="binary_cross_entropy",
        optimizer=fb.SGD(lr=lr),
        dtype="float64",
        seed=seed,
    )
    model.fit(X, Y_CLASS, epochs=epochs, batch_size=None, verbose=0)
    return model.predict_proba(X)[:, 0], model.predict(X)


def main(verbose=True, seed=0):
    w, b, ls_loss = least_squares()
    sgd_pred, sgd_loss = linear_sgd(seed=seed)
    exact = hand_made()
    proba, classes = learned(seed=seed)
    if verbose:
        print(f"(a) least squares: w = {np.round(w, 6)}, b = {b:.4f}, MSE loss = {ls_loss:.4f}")
        print(
            f"    SGD on a linear model: predictions {np.round(sgd_pred, 4)}, loss {sgd_loss:.6f}"
        )
        print(f"(b) hand-made ReLU network: {exact}")
        print(f"(c) learned 2-4-1 network: probabilities {np.round(proba, 3)}, classes {classes}")
    return {
        "ls_w": w,
        "ls_b": b,
        "ls_loss": ls_loss,
        "sgd_pred": sgd_pred,
        "sgd_loss": sgd_loss,
        "exact": exact,
        "proba": proba,
        "classes": classes,
    }


if __name__ == "__main__":
    main()
