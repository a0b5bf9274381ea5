"""Layers: configuration and parameters, no math (the backends do the math).

Dense holds W and b; Dropout holds only its rate and acts on the Dense output
before it (the plan folds it into that layer).
"""
import numbers

import numpy as np

from fastbp import activations, initializers
from fastbp.validation import positive_int


class Dense:
    """A fully connected layer: A = f(X @ W + b).

    units : number of outputs d_out.
    activation : a name from fastbp.activations.ACTIVATIONS, None (identity), or an
        Activation from fastbp.activations.get(name, **params).
    input_dim : d_in, needed on the first layer unless the model is built from data.
    kernel_initializer : a name from fastbp.initializers (or
        fastbp.initializers.Constant(value)); default He for the ReLU
        family and Glorot otherwise. Biases start at zero.

    After build: W : ndarray of shape (d_in, units); b : ndarray of shape (units,).
    """

    def __init__(self, units, activation=None, input_dim=None, kernel_initializer=None):
        self.units = positive_int("units", units)
        self.activation = activations.get(activation)
        self.input_dim = positive_int("input_dim", input_dim, allow_none=True)
        if kernel_initializer is None:
            kernel_initializer = initializers.default_for(self.activation.name)
        self.kernel_initializer = initializers.get(kernel_initializer) \
            if not isinstance(kernel_initializer, str) else kernel_initializer
        initializers.get(self.kernel_initializer)  # fail early on an unknown name
        self.W = None
        self.b = None

    @property
    def built(self):
        return self.W is not None

    def build(self, input_dim, dtype, rng):
        """Create W (input_dim, units) and b (units,) in dtype, drawing from rng."""
        init = initializers.get(self.kernel_initializer)
        self.W = np.ascontiguousarray(init(rng, input_dim, self.units), dtype=dtype)
        self.b = np.zeros(self.units, dtype=dtype)
        self.input_dim = input_dim

    def parameters(self):
        """The layer's parameter arrays, in get_weights order: [W, b]."""
        return [self.W, self.b]

    def get_config(self):
        return {"class": "Dense", "units": self.units, "activation": self.activation.get_config(),
                "input_dim": self.input_dim,
                "kernel_initializer": initializers.to_config(self.kernel_initializer)}

    @classmethod
    def from_config(cls, config):
        """The layer get_config() described (unbuilt)."""
        if not isinstance(config, dict) or config.get("class") != "Dense":
            raise ValueError(f"expected a Dense layer record, got {config!r}")
        act = dict(config["activation"])
        activation = activations.get(act.pop("name"), **act)
        return cls(config["units"], activation=activation, input_dim=config["input_dim"],
                   kernel_initializer=config["kernel_initializer"])

    def __repr__(self):
        return f"Dense({self.units}, activation={self.activation.name!r}, input_dim={self.input_dim})"


class Dropout:
    """Inverted dropout on the output of the Dense layer before it: in training each
    unit is kept with probability 1 - rate and scaled by 1 / (1 - rate); at inference
    it is the identity. Masks come from the model's seeded generator.

    rate : fraction of units dropped, in [0, 1).
    """

    def __init__(self, rate):
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise ValueError(f"rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)

    def get_config(self):
        return {"class": "Dropout", "rate": self.rate}

    @classmethod
    def from_config(cls, config):
        return cls(config["rate"])

    def __repr__(self):
        return f"Dropout({self.rate})"


LAYERS = {"Dense": Dense, "Dropout": Dropout}


def from_config(config):
    """A layer from its get_config() record."""
    if not isinstance(config, dict) or config.get("class") not in LAYERS:
        raise ValueError(f"expected a layer record of class {sorted(LAYERS)}, got {config!r}")
    return LAYERS[config["class"]].from_config(config)
