"""Universal approximation in practice: one tanh hidden layer, wider is better.

A network with one hidden layer of n tanh units and a linear output,
y = tanh(x.W1 + b1).W2 + b2, is a sum of n shifted and scaled tanh steps; with
enough of them it can follow any continuous function on an interval. Here it is
fitted (MSE, Adam with a cosine-decayed learning rate, full batch) to 256 points of
sin(2x) on [-pi, pi], two full periods, with 4, 16 and 64 hidden units: the final
training error falls as the width grows.

(The target is sin(2x) rather than sin(x) because a single period of sin(x) is
already fitted to about 1e-5 by 4 tanh units, so the width would make no visible
difference; two periods need more bumps than 4 units provide.)

Run:  python examples/universal_approximation.py
"""

import numpy as np

import fastbp as fb

WIDTHS = (4, 16, 64)


def data(n=256, frequency=2):
    X = np.linspace(-np.pi, np.pi, n)[:, None]
    return X, np.sin(frequency * X)


def fit_width(width, epochs=2000, lr=0.02, seed=0):
    """Train a 1-width-1 tanh network on the data; returns its final training MSE loss
    (1/(2N) sum of squared errors) and the model."""
    X, Y = data()
    optimizer = fb.Adam(lr=lr, schedule=fb.schedules.CosineDecay(epochs, min_lr=lr / 100))
    model = fb.Sequential(
        [fb.Dense(width, activation="tanh", input_dim=1), fb.Dense(1)],
        loss="mse",
        optimizer=optimizer,
        dtype="float64",
        seed=seed,
    )
    model.fit(X, Y, epochs=epochs, batch_size=None, verbose=0)
    return model.evaluate(X, Y)["loss"], model


def main(verbose=True, seed=0, epochs=2000):
    losses = {}
    for width in WIDTHS:
        losses[width], model = fit_width(width, epochs=epochs, seed=seed)
        if verbose:
            X, Y = data()
            worst = np.abs(model.predict(X) - Y).max()
            print(
                f"{width:>3} hidden units: training loss {losses[width]:.2e}, "
                f"largest error {worst:.3f}"
            )
    return losses


if __name__ == "__main__":
    main()
