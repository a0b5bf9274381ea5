"""What fit returns, and the hooks it calls."""


class History:
    """history : dict mapping metric names ("loss", "accuracy", "val_loss", ...) to
    one value per epoch; epoch : the epoch indices run."""

    def __init__(self):
        self.history = {}
        self.epoch = []

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, metrics={sorted(self.history)})"
