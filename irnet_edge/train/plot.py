"""The training-curve PNG: loss and accuracy per epoch."""
from pathlib import Path


def plot_history(metrics: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in metrics["history"]]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in metrics["history"]], label="train")
    ax_loss.plot(epochs, [h["test_loss"] for h in metrics["history"]], label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.plot(epochs, [h["train_accuracy"] for h in metrics["history"]], label="train")
    ax_acc.plot(epochs, [h["test_accuracy"] for h in metrics["history"]], label="test")
    ax_acc.set(xlabel="epoch", ylabel="top-1 accuracy", title=f"{metrics['arch']} on {metrics['dataset']}")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
