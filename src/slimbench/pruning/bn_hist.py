"""The BatchNorm-scale histogram that shows whether sparsity training worked (mass piling up near zero)."""

from __future__ import annotations

from pathlib import Path

import torch


def plot_bn_gammas(before: torch.Tensor, after: torch.Tensor, out: str | Path, title: str = "") -> Path:
    """Overlay |gamma| histograms before and after sparsity training; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from slimbench.core.files import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    hi = float(max(before.max().item() if before.numel() else 1.0, after.max().item() if after.numel() else 1.0))
    bins = torch.linspace(0, hi, 80).tolist()
    for data, label in ((before, "before"), (after, "after")):
        small = (data < 0.05 * hi).float().mean().item() * 100 if data.numel() else 0.0
        ax.hist(data.numpy(), bins=bins, alpha=0.55, label=f"{label} (n={data.numel()}, {small:.0f}% < 5% of max)")
    ax.set_xlabel("|BatchNorm gamma|")
    ax.set_ylabel("channels")
    ax.set_yscale("log")
    ax.set_title(title or "BatchNorm scales before/after sparsity training")
    ax.legend()
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(out, buf.getvalue())
