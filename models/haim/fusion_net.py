"""HAIM's other fusion head: a small torch network over the per-modality embeddings.

``python -m cardiogate.models.haim.fusion_net --data DIR [--json FILE] [--seed N]``

The teacher (``fusion``) concatenates the modality blocks of ``embeddings`` and fits XGBoost. This
head keeps the blocks apart until a late fusion: one encoder per block (``demo``, ``ts``, ``codes``,
``notes``, ``aps``), each ``Linear -> GELU`` on that block's standardised columns plus a missing
indicator for every column that had a NaN on the fitting rows; the encoders' outputs are
concatenated and fed to a head ``Dropout -> Linear -> GELU -> Dropout -> Linear -> sigmoid``.

- Standardisation: per column mean and standard deviation on the fitting rows only (NaNs ignored;
  a column with no spread or no value there gets mean 0 and scale 1); after scaling NaN -> 0 and
  values are clipped to +-``CLIP``. Nothing of the held-out stays is read to fit it.
- Split: the held-out patients are train.py's (``is_held_out``, seed, 30 %); the stays of the other
  patients are split again BY PATIENT into fitting rows and a tune split (``tune_fraction``, salt
  ``tune:``) that chooses the epoch (early stopping). The held-out stays are scored once, at the end.
- Loss: class-weighted binary cross-entropy (``pos_weight`` = negatives / positives of the fitting
  rows). Chosen over focal loss because the imbalance (about one death in ten) is moderate, the
  target metrics (AUROC, AUPRC) are rankings that the weighting does not bias, and focal loss adds a
  parameter (gamma) that ~150 tune stays cannot choose. The weighting inflates the probabilities:
  they rank, they are not calibrated.
- AdamW, mini-batches in a seeded order; early stopping on the tune split's (weighted) loss, the
  best epoch's weights are kept. Seeds: python, numpy and torch; deterministic algorithms; on the
  CPU the same seed gives the same predictions. CUDA with bf16 autocast where present (``auto``),
  the CPU otherwise.

torch is NOT a dependency of the ``[learn]`` extra (nor of the gateway): it is imported inside the
functions that need it, through ``importlib`` so that mypy checks this module the same way with and
without torch installed (torch values are ``Any`` here). Importing this module needs numpy only.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from cardiogate.models.haim.eicu import EicuCohort

CLIP = 10.0
TUNE_SALT = "tune:"


@dataclass(frozen=True)
class NetConfig:
    """Fixed before looking at any held-out stay (no search)."""

    hidden_per_block: int = 16
    head_hidden: int = 32
    dropout: float = 0.3
    lr: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 64
    max_epochs: int = 200
    patience: int = 20
    tune_fraction: float = 0.2
    loss: str = "class-weighted BCE"


@dataclass(frozen=True)
class BlockScaler:
    """Per-column standardisation of one modality block, fitted on the fitting rows only."""

    mean: np.ndarray
    scale: np.ndarray
    indicator_columns: np.ndarray
    """Columns that get a missing indicator (those with a NaN on the fitting rows)."""

    @property
    def input_size(self) -> int:
        return int(self.mean.shape[0] + self.indicator_columns.shape[0])

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        missing = np.isnan(x)
        z = np.clip(np.where(missing, 0.0, (np.where(missing, 0.0, x) - self.mean) / self.scale), -CLIP, CLIP)
        return np.hstack([z, missing[:, self.indicator_columns].astype(np.float64)]).astype(np.float32)


def fit_scaler(x: np.ndarray, rows: np.ndarray) -> BlockScaler:
    """Mean / scale / indicator columns from ``x[rows]`` only."""
    fit = np.asarray(x, dtype=np.float64)[rows]
    observed = ~np.isnan(fit)
    count = observed.sum(axis=0)
    total = np.where(observed, fit, 0.0).sum(axis=0)
    mean = np.divide(total, count, out=np.zeros(fit.shape[1]), where=count > 0)
    dev = np.where(observed, fit - mean, 0.0)
    var = np.divide((dev**2).sum(axis=0), count, out=np.zeros(fit.shape[1]), where=count > 0)
    scale = np.sqrt(var)
    scale = np.where(scale > 1e-12, scale, 1.0)
    return BlockScaler(mean, scale, np.flatnonzero((~observed).any(axis=0)))


def seed_everything(seed: int) -> None:
    """python, numpy and torch seeds, and deterministic algorithms."""
    torch = _torch()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def pick_device(choice: str = "auto") -> Any:
    """The project's one device rule (``models/rhythm/train_edge.pick_device``), imported here so that this
    module itself loads without torch."""
    from cardiogate.models.rhythm.train_edge import pick_device as rhythm_pick_device

    return rhythm_pick_device(choice)


def _torch() -> Any:
    return importlib.import_module("torch")


@dataclass
class FusionNet:
    """A fitted fusion network: its block order, scalers, torch module and training record."""

    blocks: list[str]
    scalers: dict[str, BlockScaler]
    module: Any
    """torch.nn.ModuleDict {"encoders": ModuleDict(block -> Sequential), "head": Sequential}."""
    device: Any
    mixed_precision: bool
    config: NetConfig
    best_epoch: int = 0
    epochs_run: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def encoder_inputs(self) -> dict[str, int]:
        """Each block's encoder input size (its columns plus its missing indicators)."""
        return {b: int(self.module["encoders"][b][0].in_features) for b in self.blocks}

    @property
    def parameters(self) -> int:
        return int(sum(p.numel() for p in self.module.parameters()))


def build_module(input_sizes: dict[str, int], config: NetConfig) -> Any:
    """One ``Linear -> GELU`` encoder per block, and the head over their concatenation."""
    nn = _torch().nn
    encoders = nn.ModuleDict({b: nn.Sequential(nn.Linear(n, config.hidden_per_block), nn.GELU())
                              for b, n in input_sizes.items()})
    head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.hidden_per_block * len(input_sizes),
                                                                config.head_hidden),
                         nn.GELU(), nn.Dropout(config.dropout), nn.Linear(config.head_hidden, 1))
    return nn.ModuleDict({"encoders": encoders, "head": head})


def _forward(module: Any, order: list[str], inputs: dict[str, Any]) -> Any:
    """Logits, one per row."""
    torch = _torch()
    encoded = [module["encoders"][b](inputs[b]) for b in order]
    return module["head"](torch.cat(encoded, dim=1)).squeeze(1)


def _tensors(net: FusionNet, blocks: dict[str, np.ndarray], rows: np.ndarray | None = None) -> dict[str, Any]:
    torch = _torch()
    out = {}
    for b in net.blocks:
        x = blocks[b] if rows is None else blocks[b][rows]
        out[b] = torch.from_numpy(net.scalers[b].transform(x)).to(net.device)
    return out


def _weighted_bce(torch: Any, logits: Any, y: Any, pos_weight: float) -> Any:
    return torch.nn.functional.binary_cross_entropy_with_logits(
        logits.float(), y, pos_weight=torch.tensor(pos_weight, device=y.device))


def fit_net(blocks: dict[str, np.ndarray], y: np.ndarray, fit_rows: np.ndarray, tune_rows: np.ndarray, seed: int,
            config: NetConfig | None = None, device: str = "auto", log: Any = None) -> FusionNet:
    """Fit on ``fit_rows`` of every block (labels ``y``, one per row), stop early on ``tune_rows``' loss.

    The arrays may hold other rows (held-out stays, for instance): only ``fit_rows`` reach the scalers
    and the gradients, and only ``tune_rows`` the choice of epoch."""
    cfg = config or NetConfig()
    torch = _torch()
    seed_everything(seed)
    fit_idx, tune_idx = np.asarray(fit_rows, dtype=np.int64), np.asarray(tune_rows, dtype=np.int64)
    if np.intersect1d(fit_idx, tune_idx).size:
        raise ValueError("fit and tune rows overlap")
    yy = np.asarray(y, dtype=np.float32)
    positives = float(yy[fit_idx].sum())
    if positives == 0 or positives == len(fit_idx):
        raise ValueError("the fitting rows hold a single class")
    pos_weight = (len(fit_idx) - positives) / positives
    order = list(blocks)
    scalers = {b: fit_scaler(blocks[b], fit_idx) for b in order}
    dev = pick_device(device)
    amp = dev.type == "cuda"
    module = build_module({b: s.input_size for b, s in scalers.items()}, cfg).to(dev)
    net = FusionNet(order, scalers, module, dev, amp, cfg)
    x_fit, x_tune = _tensors(net, blocks, fit_idx), _tensors(net, blocks, tune_idx)
    y_fit, y_tune = torch.from_numpy(yy[fit_idx]).to(dev), torch.from_numpy(yy[tune_idx]).to(dev)
    optimiser = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(seed)
    best_loss, best_state, stale = float("inf"), None, 0
    for epoch in range(1, cfg.max_epochs + 1):
        module.train()
        perm = rng.permutation(len(fit_idx))
        total = 0.0
        for start in range(0, len(perm), cfg.batch_size):
            batch = torch.from_numpy(perm[start:start + cfg.batch_size]).to(dev)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                logits = _forward(module, order, {b: t.index_select(0, batch) for b, t in x_fit.items()})
            loss = _weighted_bce(torch, logits, y_fit.index_select(0, batch), pos_weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * int(batch.shape[0])
        module.eval()
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            tune_loss = float(_weighted_bce(torch, _forward(module, order, x_tune), y_tune, pos_weight))
        net.history.append({"epoch": epoch, "train_loss": total / len(fit_idx), "tune_loss": tune_loss})
        net.epochs_run = epoch
        if tune_loss < best_loss - 1e-6:
            best_loss, stale, net.best_epoch = tune_loss, 0, epoch
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    if log is not None:
        log(f"fusion net: {net.epochs_run} epochs, best {net.best_epoch} (tune loss {best_loss:.4f}), "
            f"{net.parameters} parameters on {dev.type}{' (bf16 autocast)' if amp else ''}")
    return net


def predict_net(net: FusionNet, blocks: dict[str, np.ndarray]) -> np.ndarray:
    """Probabilities in [0, 1], one per row."""
    torch = _torch()
    net.module.eval()
    with torch.no_grad(), torch.autocast(net.device.type, dtype=torch.bfloat16, enabled=net.mixed_precision):
        logits = _forward(net.module, net.blocks, _tensors(net, blocks))
    return np.asarray(torch.sigmoid(logits.float()).cpu().numpy(), dtype=np.float64)


def encode(net: FusionNet, blocks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each block's encoder output (before fusion)."""
    torch = _torch()
    net.module.eval()
    inputs = _tensors(net, blocks)
    with torch.no_grad():
        return {b: np.asarray(net.module["encoders"][b](inputs[b]).float().cpu().numpy(), dtype=np.float64)
                for b in net.blocks}


def is_tune(patient_id: str, seed: int, fraction: float) -> bool:
    """The inner tune split, by patient, among the training patients only."""
    from cardiogate.models.haim.train import _unit

    return _unit(seed, patient_id, TUNE_SALT) < fraction


def _committed_teacher(cohort: EicuCohort, seed: int, fraction: float, folder: Path | None) -> Any:
    """The committed teacher when it was trained with this seed, split and data; else None."""
    from cardiogate.models.haim import ARTIFACTS_DIR
    from cardiogate.models.haim.train import RiskModels

    try:
        models = RiskModels.load(folder or ARTIFACTS_DIR)
    except FileNotFoundError:
        return None
    m = models.manifest
    same_data = m.get("data", {}).get("sha256") == cohort.file_sha256
    same_split = m.get("seed") == seed and m.get("split", {}).get("holdout_fraction") == fraction
    return models if same_data and same_split else None


def train_fusion_net(cohort: EicuCohort, seed: int, holdout_fraction: float | None = None,
                     config: NetConfig | None = None, device: str = "auto", teacher: str = "auto",
                     artifacts: Path | None = None, log: Any = print) -> dict[str, Any]:
    """Fit the fusion net on train.py's training patients and score it, the XGBoost teacher and APACHE IVa on
    the held-out stays with an APACHE IVa prediction (the stays of ``train.compare``).

    ``teacher``: ``committed`` (``models/artifacts/risk``; refused if trained with another seed, split or
    data), ``refit`` (``fusion.fit`` on the same training stays and embeddings), or ``auto`` (committed where
    it matches, else refit)."""
    from cardiogate.models.haim import fusion
    from cardiogate.models.haim.embeddings import MODALITIES, embed, fit_vocab
    from cardiogate.models.haim.metrics import summary
    from cardiogate.models.haim.train import HOLDOUT_FRACTION, held_out_ids, training_stays

    torch = _torch()
    cfg = config or NetConfig()
    fraction = HOLDOUT_FRACTION if holdout_fraction is None else holdout_fraction
    started = time.perf_counter()
    train_s = training_stays(cohort, seed, fraction)
    test_ids = held_out_ids(cohort, seed, fraction)
    train_ids = [s.stay_id for s in train_s]
    if set(train_ids) & set(test_ids):
        raise AssertionError("a held-out stay is in the training split")
    y = np.array([float(bool(s.died_in_hospital)) for s in train_s])
    tune_mask = np.array([is_tune(s.patient_id, seed, cfg.tune_fraction) for s in train_s])
    fit_rows, tune_rows = np.flatnonzero(~tune_mask), np.flatnonzero(tune_mask)
    log(f"split by patient (seed {seed}): {len(train_ids)} training stays -> {len(fit_rows)} fit "
        f"({int(y[fit_rows].sum())} deaths) + {len(tune_rows)} tune ({int(y[tune_rows].sum())} deaths); "
        f"{len(test_ids)} held-out stays")
    vocab = fit_vocab(cohort, train_ids, seed)
    emb = embed(cohort, train_ids, vocab)
    blocks = {m: emb.blocks[m][1] for m in MODALITIES}
    net_started = time.perf_counter()
    net = fit_net(blocks, y, fit_rows, tune_rows, seed, cfg, device, log)
    net_seconds = time.perf_counter() - net_started

    by_id = {s.stay_id: s for s in cohort.samples}
    chosen = [i for i in test_ids if by_id[i].apache_iva_mortality is not None]
    excluded = len(test_ids) - len(chosen)
    y_test = np.array([float(bool(by_id[i].died_in_hospital)) for i in chosen])
    test_emb = embed(cohort, chosen, vocab)
    p_net = predict_net(net, {m: test_emb.blocks[m][1] for m in MODALITIES})
    committed = None if teacher == "refit" else _committed_teacher(cohort, seed, fraction, artifacts)
    if teacher == "committed" and committed is None:
        raise FileNotFoundError("no committed teacher trained with this seed, split and data")
    if committed is not None:
        p_teacher = committed.score(cohort, chosen)["teacher"]
        teacher_source = f"committed models/artifacts/risk/teacher.json (seed {seed}, all {len(train_ids)} " \
                         "training stays)"
    else:
        x_train, _ = emb.matrix()
        booster = fusion.fit(x_train, y, seed)
        p_teacher = fusion.predict(booster, test_emb.matrix()[0])
        teacher_source = f"refit with fusion.fit on the same {len(train_ids)} training stays (seed {seed})"
    apache = np.array([float(by_id[i].apache_iva_mortality or 0.0) for i in chosen])
    seconds = time.perf_counter() - started
    return {
        "seed": seed,
        "split": {"holdout_fraction": fraction, "training_stays": len(train_ids), "fit_stays": len(fit_rows),
                  "tune_stays": len(tune_rows), "tune_deaths": int(y[tune_rows].sum()),
                  "tune_rule": f"by patient: sha256('{{seed}}:{TUNE_SALT}{{uniquepid}}') fraction "
                               f"< {cfg.tune_fraction}, training patients only",
                  "held_out_stays": len(test_ids)},
        "held_out": {"stays": len(chosen), "deaths": int(y_test.sum()), "excluded_without_apache_iva": excluded,
                     "fusion_net": summary(y_test, p_net), "teacher": summary(y_test, p_teacher),
                     "apache_iva": summary(y_test, apache)},
        "net": {"config": asdict(cfg), "device": str(net.device), "mixed_precision": net.mixed_precision,
                "best_epoch": net.best_epoch, "epochs_run": net.epochs_run, "parameters": net.parameters,
                "encoder_inputs": net.encoder_inputs, "train_seconds": round(net_seconds, 1)},
        "teacher_source": teacher_source,
        "probabilities_in_unit_interval": bool(np.all((p_net >= 0) & (p_net <= 1))),
        "seconds": round(seconds, 1),
        "versions": {"torch": str(torch.__version__), "numpy": np.__version__},
    }


def _fmt(m: dict[str, Any]) -> str:
    return (f"{m['auroc']:.3f} ({m['auroc_ci'][0]:.3f}-{m['auroc_ci'][1]:.3f})   "
            f"{m['auprc']:.3f} ({m['auprc_ci'][0]:.3f}-{m['auprc_ci'][1]:.3f})")


def report(result: dict[str, Any], log: Any = print) -> None:
    held = result["held_out"]
    log(f"held out: {held['stays']} stays, {held['deaths']} deaths ({held['excluded_without_apache_iva']} without "
        "an APACHE IVa prediction left out)")
    log(f"{'model':<12} {'AUROC (95% CI)':<22}   {'AUPRC (95% CI)':<22}")
    for key in ("fusion_net", "teacher", "apache_iva"):
        log(f"{key:<12} {_fmt(held[key])}")
    net = result["net"]
    log(f"fusion net: best epoch {net['best_epoch']} of {net['epochs_run']}, {net['parameters']} parameters, "
        f"{net['device']}, {net['train_seconds']} s; teacher: {result['teacher_source']}; total {result['seconds']} s")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cardiogate.models.haim.fusion_net",
                                description="Fit the HAIM torch fusion network on eICU and compare it with the "
                                            "XGBoost teacher and APACHE IVa on the held-out patients.")
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="eICU-layout folder (*.csv.gz)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the result here")
    p.add_argument("--seed", type=int, default=None, help="split and model seed (default train.py's, 13)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--teacher", choices=("auto", "committed", "refit"), default="auto")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    p.add_argument("--max-epochs", type=int, default=NetConfig.max_epochs)
    return p


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        torch = _torch()
    except ImportError:
        print("fusion_net: torch is not installed (pip install torch==2.13.0, the [models] extra's pin)",
              file=sys.stderr)
        return 2
    from cardiogate.models.haim.eicu import load_cohort
    from cardiogate.models.haim.train import DEFAULT_SEED

    torch.set_num_threads(ns.threads)
    seed = DEFAULT_SEED if ns.seed is None else ns.seed
    try:
        cohort = load_cohort(ns.data, log=print)
        result = train_fusion_net(cohort, seed, config=NetConfig(max_epochs=ns.max_epochs), device=ns.device,
                                  teacher=ns.teacher)
    except FileNotFoundError as exc:
        print(f"fusion_net: {exc}", file=sys.stderr)
        return 2
    result["command"] = "python -m cardiogate.models.haim.fusion_net " + " ".join(sys.argv[1:] if argv is None
                                                                                  else argv)
    report(result)
    if ns.json is not None:
        ns.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {ns.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
