"""Training loop: random-crop windows, class-weighted loss, epoch selection on a held-aside split.

The selection split scores whole records exactly as the gateway does (hop-spaced windows
over the record, probabilities averaged), so the number selection optimises is the number
that ships. Which split that is belongs to the caller: ``distill`` keeps it apart from the
validation split it reports.

With a ``teacher`` the loss is knowledge distillation (Hinton et al. 2015): the class-weighted
cross-entropy on the labels mixed with the temperature-softened KL divergence to the
teacher's output on the very same augmented crop.
"""

from __future__ import annotations

import copy
import math
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
    flip_prob: float = 0.0
    """Chance of inverting a crop's polarity: handheld single-lead ECG is often recorded upside down."""
    mixed_precision: bool = False
    """bf16 autocast on CUDA; ignored on the CPU."""
    time_budget_s: float | None = None
    """Stop after the first epoch that ends past this many seconds (the best epoch so far is kept); the
    learning-rate schedule then runs on elapsed time, so a short budget still anneals."""
    kd_temperature: float = 3.0
    kd_alpha: float = 0.3
    """Weight of the label loss when distilling; 1 - alpha goes to the teacher's soft labels."""


@dataclass
class TrainResult:
    net: RhythmNet
    best_epoch: int
    best_mean_f1: float
    history: list[dict[str, float]]
    seconds: float
    samples_per_second: float = 0.0
    """Training crops per second of pure training (forward, backward, step), without selection scoring."""


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


def augment(xb: NDArray[np.float32], config: TrainConfig, rng: np.random.Generator) -> NDArray[np.float32]:
    """Gain, additive noise and (optionally) polarity inversion, per crop."""
    n = xb.shape[0]
    if config.noise_std > 0:
        gain = rng.uniform(0.8, 1.2, (n, 1, 1))
        xb = (xb * gain + rng.normal(0, config.noise_std, xb.shape)).astype(np.float32)
    if config.flip_prob > 0:
        sign = np.where(rng.random((n, 1, 1)) < config.flip_prob, -1.0, 1.0)
        xb = (xb * sign).astype(np.float32)
    return xb


def one_cycle_lr(progress: float, max_lr: float, pct_start: float = 0.15) -> float:
    """The one-cycle shape (warm-up from max/25, cosine down to max/1e5) at a progress in [0, 1]."""
    start, final = max_lr / 25.0, max_lr / 25.0 / 1e4
    p = min(max(progress, 0.0), 1.0)
    if p < pct_start:
        return start + (max_lr - start) * (1 - math.cos(math.pi * p / pct_start)) / 2
    return final + (max_lr - final) * (1 + math.cos(math.pi * (p - pct_start) / (1 - pct_start))) / 2


def distillation_loss(logits: torch.Tensor, target: torch.Tensor, teacher_logits: torch.Tensor,
                      hard_loss: nn.Module, temperature: float, alpha: float) -> torch.Tensor:
    """alpha * CE(labels) + (1 - alpha) * T^2 * KL(teacher_T || student_T)."""
    soft_teacher = torch.log_softmax(teacher_logits / temperature, dim=1)
    soft_student = torch.log_softmax(logits / temperature, dim=1)
    kl = nn.functional.kl_div(soft_student, soft_teacher, reduction="batchmean", log_target=True)
    out: torch.Tensor = alpha * hard_loss(logits, target) + (1.0 - alpha) * temperature * temperature * kl
    return out


def train(train_x: Sequence[NDArray[np.float64]], train_y: Sequence[int], val_x: Sequence[NDArray[np.float64]],
          val_y: Sequence[int], spec: dict[str, Any], device: torch.device, net_config: NetConfig | None = None,
          config: TrainConfig | None = None, log: Callable[[str], None] = print,
          teacher: nn.Module | None = None) -> TrainResult:
    """Train a RhythmNet; ``val_*`` is the selection split (best epoch by its mean F1)."""
    config = config or TrainConfig()
    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    net = RhythmNet(net_config or NetConfig()).to(device)
    if teacher is not None:
        teacher = teacher.to(device).eval()
    amp = config.mixed_precision and device.type == "cuda"
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(train_y).to(device))
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = (len(train_x) + config.batch_size - 1) // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, epochs=config.epochs,
                                                steps_per_epoch=steps_per_epoch, pct_start=0.15)
    step = 0
    labels = np.asarray(train_y)
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, -1, {})
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    train_seconds, crops = 0.0, 0
    for epoch in range(1, config.epochs + 1):
        net.train()
        order = rng.permutation(len(train_x))
        total = 0.0
        epoch_began = time.perf_counter()
        for lo in range(0, len(order), config.batch_size):
            idx = order[lo:lo + config.batch_size]
            xb = augment(np.stack([random_window(train_x[i], spec, rng) for i in idx])[:, None, :], config, rng)
            inputs = torch.from_numpy(xb).to(device)
            target = torch.from_numpy(labels[idx]).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = net(inputs)
                if teacher is None:
                    loss = loss_fn(logits.float(), target)
                else:
                    with torch.no_grad():
                        teacher_logits = teacher(inputs).float()
                    loss = distillation_loss(logits.float(), target, teacher_logits, loss_fn,
                                             config.kd_temperature, config.kd_alpha)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if config.time_budget_s is None:
                sched.step()
            else:  # the schedule follows whichever runs out first, the steps or the time
                progress = max(step / total_steps, (time.perf_counter() - started) / config.time_budget_s)
                for group in opt.param_groups:
                    group["lr"] = one_cycle_lr(progress, config.lr)
            total += loss.item() * len(idx)
        train_seconds += time.perf_counter() - epoch_began
        crops += len(order)
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
        log(f"epoch {epoch:3d}/{config.epochs} loss {row['loss']:.4f} selection mean F1 {mean_f1:.4f} "
            f"(N {f1['N']:.3f} A {f1['A']:.3f} O {f1['O']:.3f} ~ {f1['~']:.3f}) {row['seconds']:.0f}s{mark}")
        if epoch - best[1] >= config.patience:
            log(f"early stop: no gain for {config.patience} epochs")
            break
        if config.time_budget_s is not None and time.perf_counter() - started > config.time_budget_s:
            log(f"time budget of {config.time_budget_s:.0f}s spent after epoch {epoch}")
            break
    net.load_state_dict(best[2])
    return TrainResult(net.cpu().eval(), best[1], best[0], history, time.perf_counter() - started,
                       crops / train_seconds if train_seconds > 0 else 0.0)
