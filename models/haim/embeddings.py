"""One embedding per modality, HAIM-style (Soenksen et al., npj Digit. Med. 2022), as pure functions.

``fit_vocab(cohort, train_ids)`` learns everything data-dependent (categories, the top-k code
vocabulary, the TF-IDF vocabulary and IDF, the TruncatedSVD basis) on the training stays only;
``embed(cohort, vocab)`` maps any cohort to a matrix, one row per stay, the columns grouped by
modality. The vocabulary saves as JSON plus an ``.npz`` (loaded with ``allow_pickle=False``).

Modalities:
- ``demo``: admission demographics (age, sex, height, weight, unit, sources);
- ``ts``: per-signal statistics of the time series up to the prediction time: NIBP sys/dia/mean
  (vitalAperiodic), intake/output/urine totals (intakeOutput), numeric respiratory charting (FiO2,
  RR, PEEP, SaO2, tidal volume, O2 flow, ...);
- ``codes``: diagnoses, admission diagnoses, treatments, medications, past history as a
  multi-hot over the k most frequent codes of the training stays;
- ``notes``: TF-IDF of the eICU note fields, reduced with TruncatedSVD. TF-IDF because no
  clinical text encoder that a pip package ships loads offline here (ClinicalBERT and the like
  are weights to download); eICU demo notes are short structured phrases, which TF-IDF suits;
- ``aps``: APACHE physiology as tabular values (apacheApsVar: worst values of the first 24 h;
  apachePredVar: admission and day-1 facts). Never apachePatientResult.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cardiogate.models.haim.eicu import APS_FEATURES, PREDVAR_FEATURES, ROW_TIME, STAY, EicuCohort

MODALITIES = ("demo", "ts", "codes", "notes", "aps")
DEMO_NUMERIC = ("age", "admissionheight", "admissionweight", "unitvisitnumber", "hospitaladmitoffset")
DEMO_CATEGORICAL = ("gender", "ethnicity", "unittype", "unitadmitsource", "unitstaytype", "hospitaladmitsource")
PREDVAR_CATEGORICAL = ("admitdiagnosis",)
STATS = ("n", "mean", "std", "min", "max", "first", "last")
# respiratory charting labels -> signal (numeric values only)
RESP_SIGNALS = {"FiO2": "fio2", "FIO2 (%)": "fio2", "RR (patient)": "rr", "Total RR": "rr", "PEEP": "peep",
                "SaO2": "spo2", "Tidal Volume (set)": "tv_set", "LPM O2": "o2_lpm", "Vent Rate": "vent_rate",
                "Pressure Support": "ps", "Mean Airway Pressure": "map_airway", "Peak Insp. Pressure": "pip",
                "Exhaled MV": "mv", "Plateau Pressure": "plateau"}
NIBP = {"noninvasivesystolic": "nibp_sys", "noninvasivediastolic": "nibp_dia", "noninvasivemean": "nibp_mean"}
TOP_K_CODES = 300
MIN_CODE_STAYS = 5
TFIDF_MAX_FEATURES = 2000
SVD_COMPONENTS = 32


@dataclass
class Vocab:
    """What the embeddings learned from the training split."""

    categories: dict[str, list[str]]
    codes: list[str]
    tfidf_vocabulary: list[str]
    idf: np.ndarray
    svd_components: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: Path) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        js, npz = folder / "embeddings.json", folder / "embeddings.npz"
        js.write_text(json.dumps({"categories": self.categories, "codes": self.codes,
                                  "tfidf_vocabulary": self.tfidf_vocabulary, "meta": self.meta}, indent=1) + "\n",
                      encoding="utf-8")
        with npz.open("wb") as fh:
            np.savez_compressed(fh, idf=self.idf, svd_components=self.svd_components)
        return js, npz

    @classmethod
    def load(cls, folder: Path) -> Vocab:
        spec = json.loads((folder / "embeddings.json").read_text(encoding="utf-8"))
        with np.load(folder / "embeddings.npz", allow_pickle=False) as arrays:
            idf, comps = np.asarray(arrays["idf"]), np.asarray(arrays["svd_components"], dtype=np.float64)
        return cls(spec["categories"], spec["codes"], spec["tfidf_vocabulary"], idf, comps, spec.get("meta", {}))


@dataclass
class Embeddings:
    """One row per stay (``stay_ids``), columns grouped by modality."""

    stay_ids: list[int]
    blocks: dict[str, tuple[list[str], np.ndarray]]

    def matrix(self) -> tuple[np.ndarray, list[str]]:
        names = [f"{m}:{n}" for m in MODALITIES for n in self.blocks[m][0]]
        return np.hstack([self.blocks[m][1] for m in MODALITIES]), names


def _num(values: pd.Series) -> pd.Series:
    """eICU numbers; -1 means 'not measured' in the APACHE tables; '> 89' ages are 90."""
    text = values.astype(str).str.strip().str.replace("> 89", "90", regex=False)
    return pd.to_numeric(text, errors="coerce")


def _aligned(frame: pd.DataFrame, ids: list[int]) -> pd.DataFrame:
    return frame.reindex(ids)


def _onehot(values: pd.Series, cats: list[str], prefix: str) -> tuple[list[str], np.ndarray]:
    text = values.fillna("").astype(str).str.strip()
    out = np.zeros((len(values), len(cats) + 1))
    index = {c: i for i, c in enumerate(cats)}
    for row, v in enumerate(text):
        out[row, index.get(v, len(cats))] = 1.0
    return [f"{prefix}={c}" for c in cats] + [f"{prefix}=other"], out


def _categories(values: pd.Series, min_count: int = 5) -> list[str]:
    counts = values.fillna("").astype(str).str.strip().value_counts()
    return sorted(str(c) for c, n in counts.items() if n >= min_count and c != "")


def demographics(cohort: EicuCohort, ids: list[int], vocab: Vocab) -> tuple[list[str], np.ndarray]:
    pat = _aligned(cohort.static["patient"], ids)
    names: list[str] = []
    cols: list[np.ndarray] = []
    for c in DEMO_NUMERIC:
        names.append(c)
        cols.append(_num(pat[c]).to_numpy(dtype=float)[:, None])
    h, w = cols[1][:, 0], cols[2][:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        bmi = np.where((h > 0) & (w > 0), w / (h / 100.0) ** 2, np.nan)
    names.append("bmi")
    cols.append(bmi[:, None])
    for c in DEMO_CATEGORICAL:
        n, m = _onehot(pat[c], vocab.categories.get(c, []), c)
        names += n
        cols.append(m)
    return names, np.hstack(cols)


def _stats(frame: pd.DataFrame, ids: list[int], signal_col: str, value_col: str, order_col: str,
           signals: list[str]) -> tuple[list[str], np.ndarray]:
    """n/mean/std/min/max/first/last per (stay, signal), NaN where a stay has no value."""
    names = [f"{s}_{st}" for s in signals for st in STATS]
    out = np.full((len(ids), len(names)), np.nan)
    out[:, [i for i, n in enumerate(names) if n.endswith("_n")]] = 0.0
    if frame.empty:
        return names, out
    f = frame[[STAY, signal_col, value_col, order_col]].dropna(subset=[value_col])
    f = f.sort_values([STAY, signal_col, order_col, value_col], kind="mergesort")
    g = f.groupby([STAY, signal_col], sort=False)[value_col]
    agg = pd.DataFrame({"n": g.size(), "mean": g.mean(), "std": g.std(ddof=0), "min": g.min(), "max": g.max(),
                        "first": g.first(), "last": g.last()})
    row = {s: i for i, s in enumerate(ids)}
    col = {n: i for i, n in enumerate(names)}
    for (stay, sig), values in agg.iterrows():
        r = row.get(int(stay))
        if r is None or sig not in signals:
            continue
        for st in STATS:
            out[r, col[f"{sig}_{st}"]] = float(values[st])
    return names, out


def vital_series(cohort: EicuCohort, ids: list[int]) -> tuple[list[str], np.ndarray]:
    """NIBP sys/dia/mean statistics (vitalAperiodic) -- what a gateway with a BP cuff also sees."""
    v = cohort.events["vitalAperiodic"]
    long = v.melt(id_vars=[STAY, ROW_TIME], value_vars=list(NIBP), var_name="signal", value_name="value")
    long["signal"] = long["signal"].map(NIBP)
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    return _stats(long, ids, "signal", "value", ROW_TIME, list(NIBP.values()))


def resp_series(cohort: EicuCohort, ids: list[int], only: tuple[str, ...] | None = None) -> tuple[list[str],
                                                                                                 np.ndarray]:
    r = cohort.events["respiratoryCharting"]
    f = pd.DataFrame({STAY: r[STAY], "signal": r["respchartvaluelabel"].map(RESP_SIGNALS),
                      "value": pd.to_numeric(r["respchartvalue"].astype(str).str.strip().str.rstrip("%"),
                                             errors="coerce"),
                      ROW_TIME: r[ROW_TIME]}).dropna(subset=["signal"])
    signals = sorted(set(RESP_SIGNALS.values())) if only is None else list(only)
    return _stats(f, ids, "signal", "value", ROW_TIME, signals)


def intake_output(cohort: EicuCohort, ids: list[int]) -> tuple[list[str], np.ndarray]:
    io = cohort.events["intakeOutput"]
    path = io["cellpath"].fillna("").astype(str)
    value = pd.to_numeric(io["cellvaluenumeric"], errors="coerce")
    kinds = {"intake_ml": path.str.contains(r"\|Intake \(ml\)", regex=True),
             "output_ml": path.str.contains(r"\|Output \(ml\)", regex=True),
             "urine_ml": path.str.contains(r"\|Output \(ml\)", regex=True)
             & io["celllabel"].fillna("").astype(str).str.contains("urine", case=False)}
    names: list[str] = []
    cols: list[np.ndarray] = []
    for kind, mask in kinds.items():
        g = value[mask].groupby(io.loc[mask, STAY]).agg(["sum", "count"])
        g = g.reindex(ids)
        names += [f"{kind}_sum", f"{kind}_n"]
        cols += [g["sum"].fillna(0).to_numpy(float)[:, None], g["count"].fillna(0).to_numpy(float)[:, None]]
    m = np.hstack(cols)
    names.append("net_ml")
    return names, np.hstack([m, (m[:, 0] - m[:, 2])[:, None]])


def time_series(cohort: EicuCohort, ids: list[int]) -> tuple[list[str], np.ndarray]:
    parts = [vital_series(cohort, ids), resp_series(cohort, ids), intake_output(cohort, ids)]
    return [n for p in parts for n in p[0]], np.hstack([p[1] for p in parts])


def _levels(text: pd.Series, prefix: str, depth: tuple[int, ...]) -> pd.Series:
    """Hierarchical eICU strings (a|b|c) -> tokens for the first levels and the whole string."""
    def tok(s: Any) -> list[str]:
        parts = [p.strip().lower() for p in str(s).split("|") if p.strip()]
        if not parts:
            return []
        return sorted({prefix + "|".join(parts[:d]) for d in depth if d <= len(parts)} | {prefix + "|".join(parts)})
    return text.dropna().map(tok)


def _drug(name: Any) -> list[str]:
    words = re.findall(r"[a-z]+", str(name).lower())
    return ["med:" + words[0]] if words else []


def stay_codes(cohort: EicuCohort) -> dict[int, set[str]]:
    """Every stay's code tokens (diagnoses, admission dx, treatments, medications, past history)."""
    ev = cohort.events
    series = [
        (ev["diagnosis"][STAY], _levels(ev["diagnosis"]["diagnosisstring"], "dx:", (1, 2))),
        (ev["admissionDx"][STAY], _levels(ev["admissionDx"]["admitdxpath"], "adx:", (4, 5))),
        (ev["treatment"][STAY], _levels(ev["treatment"]["treatmentstring"], "tx:", (1, 2))),
        (ev["pastHistory"][STAY], _levels(ev["pastHistory"]["pasthistorypath"], "ph:", (4,))),
        (ev["medication"][STAY], ev["medication"]["drugname"].dropna().map(_drug)),
        (ev["medication"][STAY], ev["medication"]["drughiclseqno"].dropna().map(
            lambda v: [f"hicl:{int(float(v))}"] if str(v).replace(".", "", 1).isdigit() else [])),
    ]
    codes: dict[int, set[str]] = {}
    for stays, tokens in series:
        for stay, toks in zip(stays.loc[tokens.index], tokens, strict=True):
            codes.setdefault(int(stay), set()).update(toks)
    for stay, dx in cohort.static["patient"]["apacheadmissiondx"].dropna().items():
        codes.setdefault(int(str(stay)), set()).add("apdx:" + str(dx).strip().lower())
    return codes


def codes_multihot(cohort: EicuCohort, ids: list[int], vocab: Vocab) -> tuple[list[str], np.ndarray]:
    codes = stay_codes(cohort)
    index = {c: i for i, c in enumerate(vocab.codes)}
    out = np.zeros((len(ids), len(vocab.codes) + 1))
    for r, stay in enumerate(ids):
        toks = codes.get(stay, set())
        for t in toks:
            if t in index:
                out[r, index[t]] = 1.0
        out[r, -1] = len(toks)
    return [*vocab.codes, "n_codes"], out


def stay_text(cohort: EicuCohort, ids: list[int]) -> list[str]:
    n = cohort.events["note"]
    text = (n["notepath"].fillna("").astype(str).str.replace(r"[|/]", " ", regex=True) + " "
            + n["notevalue"].fillna("").astype(str) + " " + n["notetext"].fillna("").astype(str))
    joined = text.groupby(n[STAY]).agg(" ".join)
    return [str(joined.get(s, "")) for s in ids]


def _tfidf(vocab_terms: list[str], idf: np.ndarray) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(vocabulary=vocab_terms, sublinear_tf=True, dtype=np.float64)
    vec.idf_ = idf
    return vec


def notes(cohort: EicuCohort, ids: list[int], vocab: Vocab) -> tuple[list[str], np.ndarray]:
    k = vocab.svd_components.shape[0]
    names = [f"svd{i}" for i in range(k)] + ["has_notes"]
    texts = stay_text(cohort, ids)
    if not vocab.tfidf_vocabulary:
        return names, np.zeros((len(ids), k + 1))
    x = _tfidf(vocab.tfidf_vocabulary, vocab.idf).transform(texts)
    reduced = np.asarray(x @ vocab.svd_components.T)
    has = np.array([[1.0 if t.strip() else 0.0] for t in texts])
    return names, np.hstack([reduced, has])


def apache_physiology(cohort: EicuCohort, ids: list[int], vocab: Vocab) -> tuple[list[str], np.ndarray]:
    aps = _aligned(cohort.static["apacheApsVar"], ids)
    pv = _aligned(cohort.static["apachePredVar"], ids)
    names: list[str] = []
    cols: list[np.ndarray] = []
    for c in APS_FEATURES:
        v = _num(aps[c]).to_numpy(float)
        names.append(f"aps_{c}")
        cols.append(np.where(v == -1, np.nan, v)[:, None])
    for c in PREDVAR_FEATURES:
        if c in PREDVAR_CATEGORICAL:
            n, m = _onehot(pv[c], vocab.categories.get(c, []), f"pv_{c}")
            names += n
            cols.append(m)
        else:
            v = _num(pv[c]).to_numpy(float)
            names.append(f"pv_{c}")
            cols.append(np.where(v == -1, np.nan, v)[:, None])
    names.append("has_apache_vars")
    cols.append(aps["heartrate"].notna().to_numpy(float)[:, None])
    return names, np.hstack(cols)


def fit_vocab(cohort: EicuCohort, train_ids: list[int], seed: int) -> Vocab:
    """Learn categories, code vocabulary, TF-IDF and SVD from the training stays only."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    train = set(train_ids)
    pat = cohort.static["patient"]
    pat = pat[pat.index.isin(train)]
    cats = {c: _categories(pat[c]) for c in DEMO_CATEGORICAL}
    pv = cohort.static["apachePredVar"]
    for c in PREDVAR_CATEGORICAL:
        cats[c] = _categories(pv[pv.index.isin(train)][c])
    counts: dict[str, int] = {}
    for stay, toks in stay_codes(cohort).items():
        if stay in train:
            for t in toks:
                counts[t] = counts.get(t, 0) + 1
    ranked = sorted((t for t, n in counts.items() if n >= MIN_CODE_STAYS), key=lambda t: (-counts[t], t))
    codes = sorted(ranked[:TOP_K_CODES])
    texts = stay_text(cohort, sorted(train))
    vec = TfidfVectorizer(max_features=TFIDF_MAX_FEATURES, min_df=3, sublinear_tf=True, dtype=np.float64)
    x = vec.fit_transform(texts)
    terms = [str(t) for t in vec.get_feature_names_out()]
    k = min(SVD_COMPONENTS, max(1, min(x.shape) - 1))
    svd = TruncatedSVD(n_components=k, random_state=seed, algorithm="randomized", n_iter=7).fit(x)
    return Vocab(cats, codes, terms, np.asarray(vec.idf_, dtype=np.float64), np.asarray(svd.components_),
                 meta={"top_k_codes": TOP_K_CODES, "min_code_stays": MIN_CODE_STAYS,
                       "tfidf_max_features": TFIDF_MAX_FEATURES, "tfidf_sublinear_tf": True,
                       "svd_components": k, "train_stays": len(train)})


def embed(cohort: EicuCohort, ids: list[int], vocab: Vocab) -> Embeddings:
    """Every modality's embedding for the given stays (rows in that order)."""
    return Embeddings(list(ids), {"demo": demographics(cohort, ids, vocab), "ts": time_series(cohort, ids),
                                  "codes": codes_multihot(cohort, ids, vocab), "notes": notes(cohort, ids, vocab),
                                  "aps": apache_physiology(cohort, ids, vocab)})
