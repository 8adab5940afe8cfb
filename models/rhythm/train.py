"""Training loop: random-crop windows, class-weighted loss, early stopping on validation mean F1.

Validation scores whole records exactly as the gateway does (hop-spaced windows over the
record, probabilities averaged), so the number early stopping optimises is the number
that ships.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from cardiogate.models.rhythm import CLASSES
from cardiogate.models.rhythm.metrics import score
from cardiogate.models.rhythm.net import NetConfig, RhythmNet
from cardiogate.models.rhythm.preprocess import fit_window, window_starts


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60
    patience: int = 15
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-3
    seed: int = 2017
    noise_std: float = 0.05


@dataclass
class TrainResult:
    net: RhythmNet
    best_epoch: int
    best_mean_f1: float
    history: list[dict[str, float]]
    seconds: float


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def class_weights(labels: Sequence[int]) -> torch.Tensor:
    """Inverse square-root frequency: lifts AF and Noisy without swamping Normal."""
    counts = np.bincount(np.asarray(labels), minlength=len(CLASSES)).astype(np.float64)
    w = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def random_window(x: NDArray[np.float64], spec: dict[str, Any], rng: np.random.Generator) -> NDArray[np.float32]:
    width = int(spec["window_samples"])
    start = int(rng.integers(0, x.size - width + 1)) if x.size > width else 0
    return fit_window(x, start, spec)


def predict_records(net: nn.Module, signals: Sequence[NDArray[np.float64]], spec: dict[str, Any],
                    device: torch.device, batch: int = 64) -> NDArray[np.float32]:
    """Per-record class probabilities: mean over the record's windows, as on the gateway."""
    net.eval()
    owners: list[int] = []
    wins: list[NDArray[np.float32]] = []
    for i, x in enumerate(signals):
        for s in window_starts(x.size, spec):
            owners.append(i)
            wins.append(fit_window(x, s, spec))
    probs = np.zeros((len(wins), len(CLASSES)), dtype=np.float32)
    with torch.no_grad():
        for lo in range(0, len(wins), batch):
            xb = torch.from_numpy(np.stack(wins[lo:lo + batch])[:, None, :]).to(device)
            probs[lo:lo + batch] = torch.softmax(net(xb), dim=1).cpu().numpy()
    out = np.zeros((len(signals), len(CLASSES)), dtype=np.float32)
    np.add.at(out, np.asarray(owners), probs)
    counts = np.bincount(np.asarray(owners), minlength=len(signals))[:, None]
    result: NDArray[np.float32] = (out / counts).astype(np.float32)
    return result


def train(train_x: Sequence[NDArray[np.float64]], train_y: Sequence[int], val_x: Sequence[NDArray[np.float64]],
          val_y: Sequence[int], spec: dict[str, Any], device: torch.device, net_config: NetConfig | None = None,
          config: TrainConfig | None = None, log: Callable[[str], None] = print) -> TrainResult:
    config = config or TrainConfig()
    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    net = RhythmNet(net_config or NetConfig()).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(train_y).to(device))
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = (len(train_x) + config.batch_size - 1) // config.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, epochs=config.epochs,
                                                steps_per_epoch=steps_per_epoch, pct_start=0.15)
    labels = np.asarray(train_y)
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, -1, {})
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        net.train()
        order = rng.permutation(len(train_x))
        total = 0.0
        for lo in range(0, len(order), config.batch_size):
            idx = order[lo:lo + config.batch_size]
            xb = np.stack([random_window(train_x[i], spec, rng) for i in idx])[:, None, :]
            if config.noise_std > 0:
                gain = rng.uniform(0.8, 1.2, (len(idx), 1, 1))
                xb = (xb * gain + rng.normal(0, config.noise_std, xb.shape)).astype(np.float32)
            inputs = torch.from_numpy(xb).to(device)
            target = torch.from_numpy(labels[idx]).to(device)
            loss = loss_fn(net(inputs), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        probs = predict_records(net, val_x, spec, device)
        result = score(list(val_y), probs.argmax(axis=1).tolist())
        f1: dict[str, float] = result["f1"]  # type: ignore[assignment]
        mean_f1 = float(result["mean_f1_nao"])  # type: ignore[arg-type]
        row = {"epoch": float(epoch), "loss": total / len(order), "mean_f1_nao": mean_f1,
               **{f"f1_{k}": v for k, v in f1.items()}, "seconds": time.perf_counter() - started}
        history.append(row)
        mark = ""
        if mean_f1 > best[0]:
            best = (mean_f1, epoch, copy.deepcopy(net.state_dict()))
            mark = " *"
        log(f"epoch {epoch:3d}/{config.epochs} loss {row['loss']:.4f} val mean F1 {mean_f1:.4f} "
            f"(N {f1['N']:.3f} A {f1['A']:.3f} O {f1['O']:.3f} ~ {f1['~']:.3f}) {row['seconds']:.0f}s{mark}")
        if epoch - best[1] >= config.patience:
            log(f"early stop: no gain for {config.patience} epochs")
            break
    net.load_state_dict(best[2])
    return TrainResult(net.cpu().eval(), best[1], best[0], history, time.perf_counter() - started)
