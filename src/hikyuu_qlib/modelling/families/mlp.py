"""A multi-layer perceptron on PyTorch (CPU; extra ``torch``), trained as Qlib's ``DNNModelPytorch``.

The network is Qlib's ``Net``: input dropout 0.05; per hidden layer Linear → BatchNorm1d → LeakyReLU(0.1);
dropout 0.05; a Linear output; Linear weights drawn Kaiming-normal (a=0.1, fan-in, leaky_relu).
Training, as Qlib's: ``max_steps`` steps, each on ``batch_size`` rows drawn with replacement from the
train segment (a NumPy ``RandomState(seed)``), loss MSE, Adam (``lr``, ``weight_decay``); every
``eval_steps`` steps the MSE on the whole valid segment, the best state kept, a ``ReduceLROnPlateau``
(factor 0.5, patience 10, min lr 1e-5) stepped with it, and training stops after ``early_stop_rounds``
evaluations without a better one; the best state is restored at the end.

It is stochastic (batch draws, dropout, the initial weights): PyTorch's generator is seeded with the seed
at the start of the fit (``torch.manual_seed``, as Qlib does), the batches come from their own NumPy
generator. Saved as the ``state_dict`` in safetensors, with the architecture in its metadata.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.model import ModelType
from hikyuu_qlib.modelling.families import F32, F64, FitInput, FitResult, require

MODEL_TYPE = ModelType.MLP
TUNABLE = frozenset(
    {
        "lr",
        "max_steps",
        "batch_size",
        "early_stop_rounds",
        "eval_steps",
        "weight_decay",
        "layers",
        "optimizer",
    }
)
FORMAT = "hikyuu-qlib.mlp/1"
PREDICT_BATCH = 8096


def params(
    preset: Mapping[str, Any], *, seed: int, num_threads: int, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "lr": 0.001,
        "max_steps": 300,
        "batch_size": 2000,
        "early_stop_rounds": 50,
        "eval_steps": 20,
        "optimizer": "adam",
        "weight_decay": 0.0,
        "layers": [256],
        **preset,
    }
    out.update(overrides)
    layers = out["layers"]
    if isinstance(layers, str):
        layers = [int(v) for v in layers.replace(",", " ").split()]
    elif isinstance(layers, int):
        layers = [layers]
    out["layers"] = [int(v) for v in layers]
    if not out["layers"] or min(out["layers"]) < 1:
        raise InvalidInputError(f"layers must be positive sizes, got {out['layers']}")
    if str(out["optimizer"]).lower() not in ("adam", "gd"):
        raise InvalidInputError(f"unknown optimizer {out['optimizer']!r}: expected adam or gd")
    for key in ("max_steps", "batch_size", "early_stop_rounds", "eval_steps"):
        if int(out[key]) < 1:
            raise InvalidInputError(f"{key} must be at least 1, got {out[key]}")
    out["seed"] = int(seed)
    out["num_threads"] = int(num_threads)
    return out


def _net(torch: Any, input_dim: int, layers: Sequence[int]) -> Any:
    """Qlib's ``Net`` (same modules in the same order, so the same draws from a seeded generator)."""
    nn = torch.nn
    modules: list[Any] = [nn.Dropout(0.05)]
    width = input_dim
    for size in layers:
        modules.append(
            nn.Sequential(nn.Linear(width, size), nn.BatchNorm1d(size), nn.LeakyReLU(negative_slope=0.1))
        )
        width = size
    modules += [nn.Dropout(0.05), nn.Linear(width, 1)]
    net = nn.Sequential(*modules)
    for module in net.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, a=0.1, mode="fan_in", nonlinearity="leaky_relu")
    return net


class _Threads:
    """PyTorch's intra-op thread count for a block, restored after."""

    def __init__(self, torch: Any, n: int | None) -> None:
        self.torch, self.n, self.before = torch, n, int(torch.get_num_threads())

    def __enter__(self) -> None:
        if self.n:
            self.torch.set_num_threads(int(self.n))

    def __exit__(self, *exc: object) -> None:
        self.torch.set_num_threads(self.before)


@dataclass(frozen=True)
class MLPModel:
    net: Any
    input_dim: int
    layers: list[int]

    @property
    def native(self) -> Any:
        return self.net

    def predict(self, x: F32, num_threads: int | None = None) -> F64:
        torch = require("torch", "torch")
        if x.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        with _Threads(torch, num_threads):
            return _forward(torch, self.net, x)

    def to_bytes(self) -> bytes:
        from safetensors.torch import save

        state = {k: v.detach().contiguous() for k, v in self.net.state_dict().items()}
        meta = {"format": FORMAT, "input_dim": str(self.input_dim), "layers": ",".join(map(str, self.layers))}
        return bytes(save(state, metadata=meta))

    def importance(self) -> dict[str, dict[str, float]]:
        return {}


def _forward(torch: Any, net: Any, x: F32) -> F64:
    net.eval()
    out = []
    with torch.no_grad():
        data = torch.from_numpy(np.array(x, dtype=np.float32, copy=True))
        for i in range(0, data.shape[0], PREDICT_BATCH):
            out.append(net(data[i : i + PREDICT_BATCH]).reshape(-1))
    return np.asarray(torch.cat(out).numpy(), dtype=np.float64)


def fit(data: FitInput) -> FitResult:
    torch = require("torch", "torch")
    options = data.params
    x, y = data.train
    rows, input_dim = x.shape
    layers = list(options["layers"])
    with _Threads(torch, int(options.get("num_threads") or data.num_threads)):
        torch.manual_seed(int(options["seed"]))
        draws = np.random.RandomState(int(options["seed"]))
        net = _net(torch, input_dim, layers)
        if str(options["optimizer"]).lower() == "adam":
            optimizer = torch.optim.Adam(
                net.parameters(), lr=float(options["lr"]), weight_decay=float(options["weight_decay"])
            )
        else:
            optimizer = torch.optim.SGD(
                net.parameters(), lr=float(options["lr"]), weight_decay=float(options["weight_decay"])
            )
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.5, patience=10, threshold=0.0001, threshold_mode="rel",
            cooldown=0, min_lr=0.00001, eps=1e-08,
        )  # fmt: skip
        xt = torch.from_numpy(np.array(x, dtype=np.float32, copy=True))
        yt = torch.from_numpy(np.array(y, dtype=np.float32, copy=True)).reshape(-1)
        valid = None
        if data.valid is not None:
            valid = (
                torch.from_numpy(np.array(data.valid[0], dtype=np.float32, copy=True)),
                torch.from_numpy(np.array(data.valid[1], dtype=np.float32, copy=True)).reshape(-1),
            )
        max_steps, batch = int(options["max_steps"]), int(options["batch_size"])
        eval_steps, patience = int(options["eval_steps"]), int(options["early_stop_rounds"])
        best_loss, best_step, best_state, stale = float("inf"), 0, None, 0
        evals: dict[str, list[float]] = {"train": [], "valid": []}
        train_loss, step = 0.0, 0
        started = time.perf_counter()
        for step in range(1, max_steps + 1):
            if stale >= patience:
                step -= 1
                break
            net.train()
            optimizer.zero_grad()
            choice = torch.from_numpy(draws.choice(rows, batch))
            loss = torch.mean((net(xt[choice]).reshape(-1) - yt[choice]) ** 2)
            loss.backward()
            optimizer.step()
            train_loss += float(loss.item())
            if step % eval_steps == 0 or step == max_steps:
                if valid is None:
                    continue
                stale += 1
                net.eval()
                with torch.no_grad():
                    preds = torch.cat(
                        [
                            net(valid[0][i : i + PREDICT_BATCH]).reshape(-1)
                            for i in range(0, valid[0].shape[0], PREDICT_BATCH)
                        ]
                    )
                    valid_loss = torch.mean((preds - valid[1]) ** 2)
                evals["train"].append(train_loss / eval_steps)
                evals["valid"].append(float(valid_loss.item()))
                train_loss = 0.0
                if float(valid_loss.item()) < best_loss:
                    best_loss, best_step, stale = float(valid_loss.item()), step, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                scheduler.step(valid_loss)
                if data.progress is not None:
                    data.progress(step, max_steps, f"valid mse {float(valid_loss.item()):.5f}")
        if best_state is not None:
            net.load_state_dict(best_state)
        seconds = time.perf_counter() - started
        _check_statistics(torch, net, x)
    if data.progress is not None:
        data.progress(step, step, f"best step {best_step or step}")
    return FitResult(MLPModel(net, input_dim, layers), best_step or step, step, seconds, evals)


def _check_statistics(torch: Any, net: Any, x: F32) -> None:
    """Refuse a network whose BatchNorm running statistics are not finite: in evaluation mode such a layer
    outputs its bias alone, so every row gets the same score (up to float rounding) and any IC measured on
    it is rounding noise. It happens on raw inputs so large that a batch's variance overflows float32
    (Alpha158's VMA/VSTD reach 1e20 on a day of zero volume: ``volume + 1e-12`` in the denominator);
    Qlib's ``DNNModelPytorch`` trains such a network without a word."""
    for name, module in net.named_modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            stats = (module.running_mean, module.running_var)
            if not all(bool(torch.isfinite(t).all()) for t in stats):
                with np.errstate(invalid="ignore"):
                    top = float(np.nanmax(np.abs(x))) if x.size else float("nan")
                raise InvalidInputError(
                    f"the MLP degenerated: the running variance of its BatchNorm layer {name} is not "
                    f"finite (float32 overflow; the train inputs reach {top:.3g} in magnitude), so it would "
                    "score every row the same; train preset qlib-mlp-alpha158-norm (the same network on "
                    "features robust z-scored and clipped, as Qlib's neural-network benchmarks), or "
                    "normalise the features it learns from and predicts on (e.g. robust_zscore and fillna "
                    "in both the infer and the learn processors)"
                )


def load(data: bytes, features: list[str]) -> MLPModel:
    torch = require("torch", "torch")
    from safetensors.torch import load as load_tensors

    meta = _metadata(data)
    if meta.get("format") != FORMAT:
        raise InvalidInputError(f"not an MLP model file (format {meta.get('format')!r}, expected {FORMAT})")
    input_dim = int(meta["input_dim"])
    layers = [int(v) for v in meta["layers"].split(",") if v]
    if features and len(features) != input_dim:
        raise InvalidInputError(
            f"the MLP takes {input_dim} features, the model's processors name {len(features)}"
        )
    net = _net(torch, input_dim, layers)
    net.load_state_dict(load_tensors(data))
    net.eval()
    return MLPModel(net, input_dim, layers)


def _metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file: its header is a little-endian u64 length, then JSON."""
    import json

    if len(data) < 8:
        raise InvalidInputError("not a safetensors file: shorter than its header length")
    size = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8 : 8 + size])
    except ValueError:
        raise InvalidInputError("not a safetensors file: its header is not JSON") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return dict(meta) if isinstance(meta, dict) else {}
