"""Leave-one-region-out (LORO) evaluation of the radiometric model.

Each region is held out in turn; the model is fitted on the others and scored on it (R²
and MAE in dB, for VV and VH), overall and per Dynamic World class. Ridge λ is chosen
*inside* each fold (nested LORO over the training regions), so the held-out score is not
tuned on the held-out region. The small MLP is a comparison baseline (fixed settings).

The shipped model is the method with the best mean held-out R² (over regions and both
polarisations), refitted on all points with λ picked by LORO on all regions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from sarviz.emulator.radiometric import DW_CLASS_NAMES, TARGETS, EmulatorError, PointTable, RadiometricModel

LAMBDAS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
RIDGE_METHODS = ("linear", "poly2")
METHODS = RIDGE_METHODS + ("mlp",)

Progress = Callable[[int, int, str], None]


def r2_score(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-column coefficient of determination (1 − SSE/SST about the column's own mean)."""
    sst = ((truth - truth.mean(0)) ** 2).sum(0)
    sse = ((truth - pred) ** 2).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - sse / sst


@dataclass
class FoldResult:
    method: str
    region: str
    n: int
    r2: np.ndarray  # (2,) VV, VH
    mae: np.ndarray
    bias: np.ndarray  # mean(pred − truth)
    ridge_lambda: float | None = None
    truth: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 2)))
    pred: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 2)))
    dw_label: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0, int))

    def as_dict(self) -> dict:
        out = {"method": self.method, "region": self.region, "n": self.n, "ridge_lambda": self.ridge_lambda}
        for i, pol in enumerate(TARGETS):
            out[f"r2_{pol}"] = round(float(self.r2[i]), 4)
            out[f"mae_{pol}_db"] = round(float(self.mae[i]), 3)
            out[f"bias_{pol}_db"] = round(float(self.bias[i]), 3)
        return out


def _score(
    method: str, region: str, truth: np.ndarray, pred: np.ndarray, dw: np.ndarray, lam: float | None
) -> FoldResult:
    return FoldResult(
        method,
        region,
        len(truth),
        r2_score(truth, pred),
        np.abs(pred - truth).mean(0),
        (pred - truth).mean(0),
        lam,
        truth,
        pred,
        dw,
    )


def _regions(table: PointTable) -> list[str]:
    regions = sorted(set(table.region.tolist()))
    if len(regions) < 2:
        raise EmulatorError(f"leave-one-region-out needs points from at least 2 regions, found {regions}")
    return regions


def select_lambda(table: PointTable, feature_map: str, lambdas: tuple[float, ...] = LAMBDAS) -> tuple[float, float]:
    """λ with the best mean LORO R² over ``table``'s regions; returns (λ, score)."""
    regions = _regions(table)
    best = (lambdas[0], -np.inf)
    for lam in lambdas:
        scores = []
        for region in regions:
            held = table.region == region
            model = RadiometricModel.fit(table.embedding[~held], table.target_db[~held], feature_map, lam)
            scores.append(r2_score(table.target_db[held], model.predict_reference_db(table.embedding[held])).mean())
        score = float(np.mean(scores))
        if score > best[1]:
            best = (lam, score)
    return best


def fit_mlp(
    embedding: np.ndarray,
    target_db: np.ndarray,
    hidden: int = 32,
    epochs: int = 60,
    weight_decay: float = 0.05,
    seed: int = 0,
) -> Callable[[np.ndarray], np.ndarray]:
    """A small two-layer MLP (torch, Huber loss, AdamW, cosine schedule): the nonlinear comparison."""
    import torch

    torch.manual_seed(seed)
    mu, sd = embedding.mean(0), embedding.std(0) + 1e-9
    ym, ys = target_db.mean(0), target_db.std(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(embedding.shape[1], hidden),
        torch.nn.GELU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.GELU(),
        torch.nn.Linear(hidden, 2),
    )
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    x = torch.tensor((embedding - mu) / sd, dtype=torch.float32)
    y = torch.tensor((target_db - ym) / ys, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 128):
            batch = perm[i : i + 128]
            loss = torch.nn.functional.huber_loss(net(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    net.eval()

    def predict(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.tensor((z - mu) / sd, dtype=torch.float32)).numpy() * ys + ym

    return predict


def leave_one_region_out(
    table: PointTable, method: str, lambdas: tuple[float, ...] = LAMBDAS, progress: Progress | None = None
) -> list[FoldResult]:
    """Held-out scores of ``method`` for every region (λ nested-selected for ridge methods)."""
    if method not in METHODS:
        raise EmulatorError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    regions = _regions(table)
    results = []
    for i, region in enumerate(regions):
        held = table.region == region
        train = table.subset(~held)
        lam = None
        if method in RIDGE_METHODS:
            # nested: with only one other region left the inner LORO cannot run; fall back to the middle λ
            lam = select_lambda(train, method, lambdas)[0] if len(set(train.region.tolist())) >= 2 else 1.0
            pred = RadiometricModel.fit(train.embedding, train.target_db, method, lam).predict_reference_db(
                table.embedding[held]
            )
        else:
            pred = fit_mlp(train.embedding, train.target_db)(table.embedding[held])
        results.append(_score(method, region, table.target_db[held], pred, table.dw_label[held], lam))
        if progress:
            progress(i + 1, len(regions), f"{method}: held out {region}")
    return results


def per_class(results: list[FoldResult]) -> list[dict]:
    """Held-out predictions pooled over all folds, scored per Dynamic World class."""
    truth = np.concatenate([r.truth for r in results])
    pred = np.concatenate([r.pred for r in results])
    dw = np.concatenate([r.dw_label for r in results])
    rows = []
    for label in sorted(set(dw.tolist())):
        sel = dw == label
        name = DW_CLASS_NAMES[label] if 0 <= label < len(DW_CLASS_NAMES) else "unknown"
        r2 = r2_score(truth[sel], pred[sel])
        mae = np.abs(pred[sel] - truth[sel]).mean(0)
        rows.append(
            {
                "class": name,
                "n": int(sel.sum()),
                "r2_VV": float(r2[0]),
                "r2_VH": float(r2[1]),
                "mae_VV_db": float(mae[0]),
                "mae_VH_db": float(mae[1]),
            }
        )
    return rows


def mean_r2(results: list[FoldResult]) -> float:
    return float(np.mean([r.r2.mean() for r in results]))


def compare_methods(
    table: PointTable, methods: tuple[str, ...] = METHODS, progress: Progress | None = None
) -> dict[str, list[FoldResult]]:
    return {m: leave_one_region_out(table, m, progress=progress) for m in methods}


def fit_best(table: PointTable, comparison: dict[str, list[FoldResult]]) -> RadiometricModel:
    """Refit the ridge method that generalised best (mean held-out R²) on all points."""
    ridge = {m: res for m, res in comparison.items() if m in RIDGE_METHODS}
    if not ridge:
        raise EmulatorError("the comparison has no ridge method to ship (linear or poly2)")
    best = max(ridge, key=lambda m: mean_r2(ridge[m]))
    lam, lam_score = select_lambda(table, best)
    loro = {m: [r.as_dict() for r in res] for m, res in comparison.items()}
    return RadiometricModel.fit(
        table.embedding,
        table.target_db,
        best,
        lam,
        training_points=len(table),
        training_regions=sorted(set(table.region.tolist())),
        training_files=table.sources,
        training_sha256=table.digest(),
        selection="best mean leave-one-region-out R2 (VV, VH) among " + ", ".join(sorted(comparison)),
        lambda_selection_loro_r2=round(lam_score, 4),
        loro=loro,
        loro_mean_r2={m: round(mean_r2(res), 4) for m, res in comparison.items()},
    )


def format_report(comparison: dict[str, list[FoldResult]], shipped: str | None = None) -> str:
    """Markdown tables: per region (R², MAE, bias) for each method, then per class for the shipped one."""
    lines = [
        "| method | held-out region | n | λ | R² VV | R² VH | MAE VV dB | MAE VH dB | bias VV dB | bias VH dB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, results in comparison.items():
        for r in results:
            lam = "" if r.ridge_lambda is None else f"{r.ridge_lambda:g}"
            lines.append(
                f"| {method}{' (shipped)' if method == shipped else ''} | {r.region} | {r.n} | {lam} | "
                f"{r.r2[0]:.3f} | {r.r2[1]:.3f} | {r.mae[0]:.2f} | {r.mae[1]:.2f} | "
                f"{r.bias[0]:+.2f} | {r.bias[1]:+.2f} |"
            )
        lines.append(
            f"| {method} | **mean** | | | {np.mean([r.r2[0] for r in results]):.3f} | "
            f"{np.mean([r.r2[1] for r in results]):.3f} | {np.mean([r.mae[0] for r in results]):.2f} | "
            f"{np.mean([r.mae[1] for r in results]):.2f} | | |"
        )
    show = shipped if shipped in comparison else next(iter(comparison))
    lines += [
        "",
        f"Per Dynamic World class ({show}, held-out predictions pooled over the folds):",
        "",
        "| class | n | R² VV | R² VH | MAE VV dB | MAE VH dB |",
        "|---|---|---|---|---|---|",
    ]
    for row in per_class(comparison[show]):
        lines.append(
            f"| {row['class']} | {row['n']} | {row['r2_VV']:.3f} | {row['r2_VH']:.3f} | "
            f"{row['mae_VV_db']:.2f} | {row['mae_VH_db']:.2f} |"
        )
    return "\n".join(lines)
