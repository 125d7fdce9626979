"""The transformers of the paper (eq. 40-45; docs/experiments.md#fig-6), batched over independent
trials.

Every model is a plain object holding its sizes; its trainable weights live in a dict of
tensors with a leading *trial* dimension ``T`` (one independent network per trial), so
that many trials train in one batched computation::

    model  = model_config("sla").build(D=20, N=20)           # or build_model("sla", 20, 20)
    params = model.init_params(generators)           # {name: (T, ...)}, one generator per trial
    data   = model.prepare(X)                        # X: (T, B, D+1, N+1) prompts (eq. 1)
    y_hat  = model.predict(params, data)             # (T, B): the read-out Y[D+1, N+1]

All read-outs are the query entry ``Y[D+1, N+1]`` (1-based, as in the paper; ``Y[D, N]``
0-based). For a single layer only the query column of ``Y`` enters, so the models compute
that column alone; this is exact, not an approximation (the feed-forward part of TF acts
token by token).

| name    | eq.   | prediction (0-based indices)                         | weights            |
|---------|-------|------------------------------------------------------|--------------------|
| ``sla`` | 40    | ``c u^T W q``, ``u = X X^T[D, :]``, ``q = X[:, N]``  | W                  |
| ``fla`` | 41    | ``c/sqrt(D) (W_V X X^T W X)[D, N]``                  | W, W_V             |
| ``mhla``| 41 xM | ``sum_h w_O[h] y^_h`` over M FLA heads               | W, W_V, w_O        |
| ``sa``  | 42-44 | ``(W_O V softmax(K^T q_N / sqrt H))[D]``             | W_Q, W_K, W_V, W_O |
| ``tf``  | 45    | SA + residual + ReLU MLP (width H) + residual        | + W_1, b_1, W_2, b_2 |

``c`` is the convention's prefactor (docs/conventions.md): ``1/(N+1)`` for ``authors`` (default),
``1/(D N)`` for ``paper-text`` (the printed eq. 40), ``1/N`` for ``normalized``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .conventions import CONVENTION, DEFAULT_CONVENTION, get_convention
from .errors import Int, OrNone, ParameterError, validate_fields

__all__ = [
    "Model",
    "ModelConfig",
    "SLA",
    "FLA",
    "MHLA",
    "SA",
    "TF",
    "SeparateSLA",
    "SLAConfig",
    "FLAConfig",
    "MHLAConfig",
    "SAConfig",
    "TFConfig",
    "SeparateSLAConfig",
    "register_model",
    "model_names",
    "get_model",
    "model_config",
    "build_model",
]

Params = dict[str, torch.Tensor]


def _randn(
    generators: list[torch.Generator],
    shape: tuple[int, ...],
    std: float,
    device: torch.device | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``(T, *shape)`` Gaussian weights, trial k drawn from ``generators[k]`` (float64, CPU)."""
    w = torch.stack([torch.randn(shape, generator=g, dtype=torch.float64) for g in generators])
    return (std * w).to(device=device, dtype=dtype)


@dataclass(frozen=True)
class Model:
    """Common sizes and helpers of every model.

    Attributes
    ----------
    D : int
        Input dimension; tokens have ``D + 1`` entries ``[x; y]``.
    N : int
        Context length; prompts have ``N + 1`` tokens (the last is the query).
    convention : str
        Normalization convention (docs/conventions.md); sets the linear-attention prefactor c.
    """

    D: int
    N: int
    convention: str = DEFAULT_CONVENTION

    name = "model"
    _parameter_constraints: ClassVar[dict] = {"D": Int(1), "N": Int(1), "convention": CONVENTION}

    def __post_init__(self) -> None:
        validate_fields(self)

    @property
    def c(self) -> float:
        """Linear-attention prefactor c of the convention (eq. 2, 40)."""
        return get_convention(self.convention).prefactor(self.D, self.N)

    def prepare(self, X: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-prompt tensors the model needs, each with leading dims (T, B).

        Default: the tokens ``(X^T,)``, shape (T, B, N+1, D+1) (token-major, contiguous).
        """
        return (_tokens(X),)

    def init_params(
        self,
        generators: list[torch.Generator],
        *,
        device: torch.device | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> Params:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, params: Params, data: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Predictions ``y^`` of shape (T, B)."""
        raise NotImplementedError  # pragma: no cover - abstract


@dataclass(frozen=True)
class SLA(Model):
    """Simplified linear attention, eq. (40): ``Y = c X X^T W X``, ``y^ = Y[D, N]``.

    Row D of ``X X^T`` is ``u = sum_i y_i [x_i; y_i]`` (the query label is masked to 0),
    so ``y^ = c u^T W q`` with ``q = [x~; 0]``. This equals ``s . vec(W)`` with the core's
    spin features ``s = vec(c u (x) q)`` (row-major, ``spinglass_icl.hamiltonian``): the
    weight ``W`` (T, D+1, D+1) *is* the spin configuration, ``sigma = W.reshape(T, -1)``.

    Initialization: ``W_mn ~ N(0, 1/(D+1))`` (LeCun normal). The loss is a convex
    quadratic in W; the trained W tends to the ground state ``A^{-1} h`` of eq. (5).
    """

    name = "sla"

    def prepare(self, X: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(u, q)``, each (T, B, D+1): all SLA needs (20x smaller than X at N = 20)."""
        ctx = X[..., :-1]  # (T, B, D+1, N)
        u = torch.einsum("...mi,...i->...m", ctx, ctx[..., -1, :])  # (T, B, D+1)
        return (u, X[..., -1])

    def init_params(self, generators, *, device=None, dtype=torch.float64) -> Params:
        d1 = self.D + 1
        return {"W": _randn(generators, (d1, d1), 1 / math.sqrt(d1), device, dtype)}

    def predict(self, params: Params, data: tuple[torch.Tensor, ...]) -> torch.Tensor:
        u, q = data  # (T, B, D+1) each
        Wq = q @ params["W"].transpose(1, 2)  # (T, B, D+1)
        return self.c * (u * Wq).sum(-1)

    @staticmethod
    def merged(params: Params) -> torch.Tensor:
        """The weight W of ``y^ = c u^T W q``: the SLA's own."""
        return params["W"]

    @staticmethod
    def merged_grads(params: Params, G: torch.Tensor) -> Params:
        """The gradients of the weights from ``G = dL/dW`` of the merged W (chain rule)."""
        return {"W": G}


def _tokens(X: torch.Tensor) -> torch.Tensor:
    """Token-major copy of prompts: (T, B, D+1, N+1) -> (T, B, N+1, D+1), contiguous, so that
    every contraction below is a plain batched matmul on a view."""
    return X.transpose(-1, -2).contiguous()


def _gram_and_query(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(C, q)``: ``C = X X^T`` (T, B, D+1, D+1), all N+1 tokens, and the query token q."""
    return X @ X.transpose(-1, -2), X[..., -1].contiguous()


def _fla_heads(c: float, V: torch.Tensor, W: torch.Tensor, C: torch.Tensor, q: torch.Tensor):
    """``c/sqrt(D) (W_V X X^T W X)[D, N] = c/sqrt(D) v^T C W q`` for M heads.

    V, W: (T, M, D+1, D+1); ``C = X X^T``: (T, B, D+1, D+1); q: (T, B, D+1) -> (T, B, M).
    Only the read-out row ``v = W_V[D, :]`` of each W_V enters. Two large batched matmuls.
    """
    T, B, d, _ = C.shape
    M = W.shape[1]
    v = V[:, :, d - 1, :]  # (T, M, D+1)
    vC = C.reshape(T, B * d, d) @ v.transpose(1, 2)  # (T, B*(D+1), M): (C v_h)_a = (v_h^T C)_a
    Wq = q @ W.reshape(T, M * d, d).transpose(1, 2)  # (T, B, M*(D+1)): W_h q
    vC = vC.reshape(T, B, d, M).transpose(2, 3)  # (T, B, M, D+1)
    return (c / math.sqrt(d - 1)) * (vC * Wq.reshape(T, B, M, d)).sum(-1)


@dataclass(frozen=True)
class FLA(Model):
    """Full linear attention, eq. (41): ``Y = c/sqrt(D) W_V X X^T W X``, ``y^ = Y[D, N]``.

    ``c`` is the convention's prefactor (``1/(DN)`` gives eq. 41 as printed). Only row D of
    ``W_V`` reaches the read-out; the other rows feel only the weight decay. Unlike SLA,
    ``W_V``'s read-out row also sees the query token through ``X X^T``.

    Initialization: ``W_V ~ N(0, 1)`` (the ``1/sqrt(D)`` of eq. 41 compensates its norm),
    ``W ~ N(0, 1/(D+1))``. With ``W_V[D] = sqrt(D) e_D`` FLA reduces to SLA, so it can fit at
    least as well.
    """

    name = "fla"

    def prepare(self, X: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(X X^T, q)``: the Gram matrix over all N+1 tokens and the query token."""
        return _gram_and_query(X)

    def init_params(self, generators, *, device=None, dtype=torch.float64) -> Params:
        d1 = self.D + 1
        return {
            "W": _randn(generators, (d1, d1), 1 / math.sqrt(d1), device, dtype),
            "W_V": _randn(generators, (d1, d1), 1.0, device, dtype),
        }

    def predict(self, params: Params, data: tuple[torch.Tensor, ...]) -> torch.Tensor:
        C, q = data
        V, W = params["W_V"][:, None], params["W"][:, None]  # one head
        return _fla_heads(self.c, V, W, C, q)[..., 0]


@dataclass(frozen=True)
class MHLA(Model):
    """Multi-head linear attention: M FLA heads (eq. 41) read out linearly by ``w_O``.

    ``y^ = sum_h w_O[h] y^_h`` with ``y^_h = c/sqrt(D) (W_V^h X X^T W^h X)[D, N]``: the
    paper concatenates the heads' outputs and reads them with ``W_O`` whose dimension is M;
    since only the query entries reach the prediction, ``W_O`` is an M-vector here.

    Initialization: per head as FLA; ``w_O ~ N(0, 1/M)``.
    """

    M: int = 10
    name = "mhla"
    _parameter_constraints = {**Model._parameter_constraints, "M": Int(1)}

    def prepare(self, X: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(C_pairs, q)``: the upper triangle ``C_ab, a <= b`` of ``C = X X^T`` over all
        N+1 tokens, (T, B, (D+1)(D+2)/2), and the query token q, (T, B, D+1)."""
        C, q = _gram_and_query(X)
        a, b = _pairs(C.shape[-1], C.device)
        return C[..., a, b].contiguous(), q

    def init_params(self, generators, *, device=None, dtype=torch.float64) -> Params:
        d1, M = self.D + 1, self.M
        return {
            "W": _randn(generators, (M, d1, d1), 1 / math.sqrt(d1), device, dtype),
            "W_V": _randn(generators, (M, d1, d1), 1.0, device, dtype),
            "W_O": _randn(generators, (M,), 1 / math.sqrt(M), device, dtype),
        }

    def predict(self, params: Params, data: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``y^ = c/sqrt(D) sum_abc C_ab K_abc q_c`` with the head-summed tensor
        ``K_abc = sum_h w_O[h] v_h[a] W^h_bc`` (``v_h = W_V^h[D, :]``): the same number as
        ``sum_h w_O[h] c/sqrt(D) v_h^T C W^h q`` (eq. 41 per head), but one GEMM of
        ``(D+1)^2 (D+2)/2`` multiply-adds per prompt (C symmetric: pairs ``a <= b`` with
        ``K_abc + K_bac``) instead of about ``2 M (D+1)^2`` in small per-head products."""
        Cp, q = data  # (T, B, n_pairs), (T, B, D+1)
        d = q.shape[-1]
        v = params["W_V"][:, :, d - 1, :]  # (T, M, D+1)
        K = torch.einsum("tm,tma,tmbc->tabc", params["W_O"], v, params["W"])  # (T, d, d, d)
        a, b = _pairs(d, q.device)
        Kp = (K + K.transpose(1, 2))[:, a, b]  # (T, n_pairs, D+1); diagonal counted twice
        Kp = Kp * torch.where(a == b, 0.5, 1.0).to(Kp.dtype)[None, :, None]
        return (self.c / math.sqrt(d - 1)) * ((Cp @ Kp) * q).sum(-1)


def _pairs(d: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices of the upper triangle (diagonal included) of a d x d matrix."""
    a, b = torch.triu_indices(d, d, device=device)
    return a, b


class _RowsTimes(torch.autograd.Function):
    """``out = V @ M`` for batched row blocks ``V`` (B, k, a) and a constant ``M`` (B, a, b)
    whose transpose ``Mt`` (B, b, a) is held as a contiguous copy; ``dV = dout @ Mt``.

    A batched product with few rows on the left runs on CPU about twice as fast as one with
    few columns on the right (``M @ v``: one tiny GEMM per prompt); holding the tokens in
    both layouts lets the forward and the backward pass both take the fast form (the same
    numbers, to float rounding)."""

    @staticmethod
    def forward(ctx, V, M, Mt):
        ctx.save_for_backward(Mt)
        return V @ M

    @staticmethod
    def backward(ctx, g):
        (Mt,) = ctx.saved_tensors
        return g @ Mt, None, None


def _token_layouts(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens, features)``: the prompts token-major (T, B, N+1, D+1) and feature-major
    (T, B, D+1, N+1), both contiguous (what :class:`SA` and :class:`TF` read)."""
    return _tokens(X), X.contiguous()


def _query_scores_and_mix(params: Params, data, H: int, u: torch.Tensor | None = None):
    """Softmax weights of the query column and what they mix, from both token layouts.

    ``alpha_i = softmax_i(X_i . r / sqrt(H))``, ``r = W_K^T W_Q x_q`` (eq. 44, the query
    column). With ``u`` (T, D+1) given, returns ``sum_i alpha_i (u . X_i)`` (T, B) (one
    row of the mix: :class:`SA`'s label readout); otherwise the mix ``sum_i alpha_i X_i``
    (T, B, D+1) (:class:`TF`). Each pass over the tokens is a row-block product
    (:class:`_RowsTimes`), and the softmax runs over a contiguous last axis.
    """
    Xt, Xf = data  # (T, B, n, d), (T, B, d, n)
    T, B, n, d = Xt.shape
    Xt2, Xf2 = Xt.reshape(T * B, n, d), Xf.reshape(T * B, d, n)
    W = params["W_Q"].transpose(1, 2) @ params["W_K"]  # (T, d, d)
    r = Xt[:, :, -1, :] @ (W / math.sqrt(H))  # (T, B, d): W_K^T W_Q x_q / sqrt(H)
    if u is not None:  # scores and values in one pass: [r; u] X^T
        rows = torch.stack([r, u[:, None].expand(T, B, d)], -2).reshape(T * B, 2, d)
        sz = _RowsTimes.apply(rows, Xf2, Xt2)  # (T*B, 2, n)
        alpha = torch.softmax(sz[:, 0], dim=-1)
        return (alpha * sz[:, 1]).sum(-1).reshape(T, B)
    s = _RowsTimes.apply(r.reshape(T * B, 1, d), Xf2, Xt2)[:, 0]  # (T*B, n)
    alpha = torch.softmax(s, dim=-1)
    return _RowsTimes.apply(alpha[:, None], Xt2, Xf2).reshape(T, B, d)


def _attention_query(params: Params, Xt: torch.Tensor, H: int) -> torch.Tensor:
    """Query column of single-head softmax attention (eq. 43-44) projected back by W_O.

    ``attn(N) = sum_i alpha_i(N) W_V X_i``, ``alpha(N) = softmax_i(k_i . q_N / sqrt(H))``
    over all N+1 tokens; Xt: tokens (T, B, N+1, D+1). Returns ``W_O attn(N)``, (T, B, D+1).
    Cost O(T B (N+1)(D+1)) + O(T B H (D+1)), via ``k_i . q_N = X_i . (W_K^T W_Q X_N)``.
    """
    T, B, n, d = Xt.shape
    xq = Xt[:, :, -1, :]  # (T, B, D+1)
    r = xq @ (params["W_Q"].transpose(1, 2) @ params["W_K"])  # (T, B, D+1): W_K^T W_Q x_q
    scores = Xt.reshape(T * B, n, d) @ r.reshape(T * B, d, 1) / math.sqrt(H)  # (T*B, N+1, 1)
    alpha = torch.softmax(scores, dim=1)
    mix = (alpha.transpose(1, 2) @ Xt.reshape(T * B, n, d)).reshape(T, B, d)  # sum alpha_i X_i
    return mix @ (params["W_O"] @ params["W_V"]).transpose(1, 2)  # (T, B, D+1)


def _attention_params(
    generators, D: int, H: int, device, dtype
) -> Params:  # LeCun-normal Q, K, V, O
    d1 = D + 1
    return {
        "W_Q": _randn(generators, (H, d1), 1 / math.sqrt(d1), device, dtype),
        "W_K": _randn(generators, (H, d1), 1 / math.sqrt(d1), device, dtype),
        "W_V": _randn(generators, (H, d1), 1 / math.sqrt(d1), device, dtype),
        "W_O": _randn(generators, (d1, H), 1 / math.sqrt(H), device, dtype),
    }


@dataclass(frozen=True)
class SA(Model):
    """Single-head softmax attention, eq. (42)-(44), inner size H.

    ``Q = W_Q X, K = W_K X, V = W_V X`` with ``W_Q, W_K, W_V`` of shape H x (D+1);
    the query token's output ``attn(N) = sum_i alpha_i(N) v_i``,
    ``alpha_i(N) = softmax_i(k_i . q_N / sqrt(H))`` over all N+1 tokens (eq. 44), is mapped
    back to token space by ``W_O`` ((D+1) x H, the paper leaves this open) and read out at
    the label row: ``y^ = (W_O attn(N))[D]``.

    Initialization: LeCun normal (``N(0, 1/fan_in)``) for all four matrices.

    What it can learn: softmax attention imitates linear attention only through its scores
    (a kernel smoother), and the query-key norm that needs costs more under eq. (2)'s
    penalty on all weights than it gains. At D = 20, lam = 0.01 (``authors`` convention) the
    regularized optimum is the trivial predictor ``W_Q = W_K = 0``, whatever the optimizer;
    at N = 50, lam = 0.005 (the authors' Adam ``weight_decay = 0.01``,
    docs/conventions.md#lam-mapping) it learns. The analysis and the measurements are in
    benchmarks/RESULTS.md ("SA and TF at D = 20"; docs/experiments.md#fig-6).
    """

    H: int = 32
    name = "sa"
    _parameter_constraints = {**Model._parameter_constraints, "H": Int(1)}

    def init_params(self, generators, *, device=None, dtype=torch.float64) -> Params:
        return _attention_params(generators, self.D, self.H, device, dtype)

    prepare = staticmethod(_token_layouts)

    def predict(self, params: Params, data: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``y^ = sum_i alpha_i(N) z_i`` with ``z_i = u . X_i``, ``u = (W_O W_V)[D, :]``:
        only the label row of ``W_O attn(N)`` is read, so the scores ``X_i . r`` and the
        values ``z_i`` come from one batched product ``[r; u] X^T`` (one pass over the
        tokens forward and one backward, instead of two each for the full mix of
        :func:`_attention_query`; the same number). ``data``: :func:`_token_layouts`."""
        u = (params["W_O"] @ params["W_V"])[:, self.D, :]  # (T, D+1)
        return _query_scores_and_mix(params, data, self.H, u)


@dataclass(frozen=True)
class TF(Model):
    """One transformer block, eq. (45): SA + residual, two-layer ReLU MLP + residual.

    ``z1 = SA(X) + X``, ``z2 = ReLU(W_1 z1 + b_1)``, ``z3 = W_2 z2 + b_2``,
    ``z_out = z1 + z3``, ``y^ = z_out[D, N]``, with SA as in :class:`SA` and an MLP of
    hidden width H (``W_1``: H x (D+1), ``W_2``: (D+1) x H; the paper leaves it open).

    Initialization: attention as SA; ``W_1 ~ N(0, 1/(D+1))``, ``W_2 ~ N(0, 1/H)``, biases 0.

    The feed-forward part acts token by token and cannot form the products ``y_i x_i`` that
    in-context regression needs, so TF learns only through its attention, with the same limit
    as :class:`SA` (trivial predictor at lam = 0.01, D = N = 20, ``authors`` convention) plus
    more weights to overfit with (benchmarks/RESULTS.md, "## train").
    """

    H: int = 32
    name = "tf"
    _parameter_constraints = {**Model._parameter_constraints, "H": Int(1)}

    def init_params(self, generators, *, device=None, dtype=torch.float64) -> Params:
        d1, H = self.D + 1, self.H
        p = _attention_params(generators, self.D, H, device, dtype)
        T = len(generators)
        p["W_1"] = _randn(generators, (H, d1), 1 / math.sqrt(d1), device, dtype)
        p["b_1"] = torch.zeros(T, H, device=device, dtype=dtype)
        p["W_2"] = _randn(generators, (d1, H), 1 / math.sqrt(H), device, dtype)
        p["b_2"] = torch.zeros(T, d1, device=device, dtype=dtype)
        return p

    prepare = staticmethod(_token_layouts)

    def predict(self, params: Params, data: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Eq. (45) at the query column; ``data``: :func:`_token_layouts`."""
        mix = _query_scores_and_mix(params, data, self.H)  # sum_i alpha_i X_i
        z1 = mix @ (params["W_O"] @ params["W_V"]).transpose(1, 2) + data[0][:, :, -1, :]
        z2 = torch.relu(z1 @ params["W_1"].transpose(1, 2) + params["b_1"][:, None])  # (T, B, H)
        z3 = z2 @ params["W_2"].transpose(1, 2) + params["b_2"][:, None]  # (T, B, D+1)
        return (z1 + z3)[..., self.D]


@dataclass(frozen=True)
class SeparateSLA(Model):
    """SLA with separate query and key matrices (eq. 40 before merging; supplement, Fig. S1):
    ``Y = c X X^T W_Q^T W_K X``, ``y^ = Y[D, N] = c (W_Q u) . (W_K q)``.

    The function equals :class:`SLA`'s with ``W = W_Q^T W_K`` (tested), but the loss is no
    longer quadratic in the weights: gradient descent runs on a factorized W (rank at most
    ``d_k``). ``W_Q, W_K``: ``d_k x (D+1)`` (``d_k = D+1`` when None), initialized
    ``N(0, 1/(D+1))`` as in the authors' scripts.
    """

    d_k: int | None = None
    name = "sla-separate"
    _parameter_constraints = {**Model._parameter_constraints, "d_k": OrNone(Int(1))}

    @property
    def key_size(self) -> int:
        return self.D + 1 if self.d_k is None else self.d_k

    prepare = SLA.prepare

    def init_params(self, generators, *, device=None, dtype=torch.float64) -> Params:
        d1, k = self.D + 1, self.key_size
        return {
            "W_Q": _randn(generators, (k, d1), 1 / math.sqrt(d1), device, dtype),
            "W_K": _randn(generators, (k, d1), 1 / math.sqrt(d1), device, dtype),
        }

    def predict(self, params: Params, data: tuple[torch.Tensor, ...]) -> torch.Tensor:
        u, q = data  # (T, B, D+1) each
        a = u @ params["W_Q"].transpose(1, 2)  # (T, B, d_k): W_Q u
        b = q @ params["W_K"].transpose(1, 2)  # (T, B, d_k): W_K q
        return self.c * (a * b).sum(-1)

    @staticmethod
    def merged(params: Params) -> torch.Tensor:
        """The merged weight ``W = W_Q^T W_K`` (T, D+1, D+1) of the same function."""
        return params["W_Q"].transpose(1, 2) @ params["W_K"]

    @staticmethod
    def merged_grads(params: Params, G: torch.Tensor) -> Params:
        """``dL/dW_Q = W_K G^T``, ``dL/dW_K = W_Q G`` from ``G = dL/dW``, ``W = W_Q^T W_K``."""
        return {"W_Q": params["W_K"] @ G.transpose(1, 2), "W_K": params["W_Q"] @ G}


# ------------------------------------------------------------------ registry
#: learning rates of a model that names none for an optimizer (a model config's
#: ``default_lr`` overrides them per optimizer)
FALLBACK_LR: Mapping[str, float] = {"adam": 1e-2, "sgd": 0.1}

_REGISTRY: dict[str, type[ModelConfig]] = {}


@dataclass(frozen=True)
class ModelConfig:
    """A model's own settings, the registered object of a model (:func:`register_model`).

    A subclass names the model (``name``), the :class:`Model` class it builds
    (``model_class``), its default learning rates per optimizer (``default_lr``; an
    optimizer it does not name takes :data:`FALLBACK_LR`) and its hyperparameters as
    dataclass fields, checked by ``_parameter_constraints`` (:func:`errors.validate_fields`).
    The task sizes (D, N, convention) come from the task (:class:`spinglass_icl.TaskConfig`)
    when the model is built.

    ``spins``: the weight dict is ``{"W": ...}`` with W the spin configuration of eq. 5
    (SLA only): ``TrainResult.W``, the exact ground state and ``TrainResult.instances``.

    ``quadratic``: the model reads the prompt through the SLA factors ``(u, q)``
    (``prepare``) and predicts ``c u^T W q`` with a weight ``W = model.merged(params)``,
    so eq. 2's data term is the quadratic form of eq. 5 in W: full-batch training then
    steps through the couplings (O(n^2) per step, whatever P) and may draw its data as
    factors (``sampler="factors"``).
    """

    name: ClassVar[str] = ""
    model_class: ClassVar[type[Model]] = Model
    default_lr: ClassVar[Mapping[str, float]] = {}
    spins: ClassVar[bool] = False
    quadratic: ClassVar[bool] = False
    _parameter_constraints: ClassVar[dict] = {}

    def __post_init__(self) -> None:
        validate_fields(self)

    def params(self) -> dict[str, Any]:
        """The hyperparameters as a dict (the dataclass fields)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., **params}`` (JSON-able; what checkpoints and store keys hold)."""
        return {"name": self.name, **self.params()}

    def build(self, D: int, N: int, convention: str = DEFAULT_CONVENTION) -> Model:
        """The model object for dimension D, context length N (sizes only, no weights)."""
        return self.model_class(D, N, convention, **self.params())

    def learning_rate(self, optimizer: str) -> float:
        """The default learning rate of this model with ``optimizer``."""
        return float(self.default_lr.get(optimizer, FALLBACK_LR.get(optimizer, 1e-2)))

    def prompt_items(self, D: int, N: int) -> int:
        """Numbers stored per prepared prompt (``Model.prepare``): whole tokens by default."""
        return (D + 1) * (N + 1)

    def step_items(self, D: int, N: int) -> int:
        """Numbers of one prompt's activations and gradients in a training step (forward
        and backward through the model; a safe over-estimate)."""
        return 3 * (D + 1) * (N + 1) + 2 * (D + 1) ** 2

    def weight_items(self, D: int) -> int:
        """Trainable numbers per trial (weights, gradients and Adam's two moments are four
        times this)."""
        gens = [torch.Generator().manual_seed(0)]
        return sum(p.numel() for p in self.build(D, 1).init_params(gens).values())


def register_model(cls: type[ModelConfig]) -> type[ModelConfig]:
    """Class decorator: register a :class:`ModelConfig` subclass under its ``name`` (used
    by training, ``spinglass-icl train --model``, the presets and the figures)."""
    if not (isinstance(cls, type) and issubclass(cls, ModelConfig)):
        raise ParameterError(f"register_model needs a ModelConfig subclass, got {cls!r}")
    if not isinstance(cls.name, str) or not cls.name:
        raise ParameterError(f"model config {cls.__name__} must set a non-empty name")
    if not (isinstance(cls.model_class, type) and issubclass(cls.model_class, Model)):
        raise ParameterError(f"model config {cls.__name__} must set model_class (a Model)")
    old = _REGISTRY.get(cls.name)
    if old is not None and old.__qualname__ != cls.__qualname__:
        raise ParameterError(f"model name {cls.name!r} is taken by {old.__qualname__}")
    _REGISTRY[cls.name] = cls
    return cls


def model_names() -> tuple[str, ...]:
    """Names of the registered models, in registration order."""
    return tuple(_REGISTRY)


def get_model(name: str) -> type[ModelConfig]:
    """The registered config class called ``name`` (ParameterError naming the allowed ones)."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ParameterError(f"model must be one of {', '.join(_REGISTRY)}; got {name!r}")
    return _REGISTRY[name]


def model_config(name: str, *, strict: bool = True, **params: Any) -> ModelConfig:
    """The config of model ``name`` with hyperparameters ``params``.

    ``strict=False`` drops the parameters the model does not have (a figure that sets
    ``H`` and ``M`` for every model it trains); otherwise an unknown one is refused.
    """
    cls = get_model(name)
    own = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(params) - own)
    if extra and strict:
        has = ", ".join(sorted(own)) or "none"
        raise ParameterError(
            f"{extra[0]} is not a parameter of model {name!r} (its parameters: {has})"
        )
    return cls(**{k: v for k, v in params.items() if k in own})


def build_model(
    name: str, D: int, N: int, *, convention: str = DEFAULT_CONVENTION, **params: Any
) -> Model:
    """The model called ``name`` for dimension D, context length N (``params``: its own
    hyperparameters, e.g. ``H`` of SA/TF, ``M`` of MHLA; others are refused)."""
    return model_config(name, **params).build(D, N, convention)


def _pairs_count(D: int) -> int:
    return (D + 1) * (D + 2) // 2


# Default learning rates: from short scans of full-batch training at the Fig. 6 setting
# (benchmarks/RESULTS.md, "## train"). With Adam, SLA/FLA/MHLA reach their plateau in about
# 100-200 epochs; SA/TF use a smaller rate because larger first steps (plus the penalty)
# can shrink W_Q, W_K to the stationary point W_Q = W_K = 0. SGD's stable rate depends on
# the curvature of eq. 2 (the largest eigenvalue of A = G + lam I, which grows as D and N
# shrink): lower ``lr`` if train() says so. MHLA's Adam rate is 3e-2: at the ``paper``
# Fig. 6 setting 1e-1 oscillates and never meets the convergence stop, 3e-2 reaches a
# lower loss and test error.


@register_model
@dataclass(frozen=True)
class SLAConfig(ModelConfig):
    """Simplified linear attention (:class:`SLA`, eq. 40); no hyperparameters."""

    name = "sla"
    model_class = SLA
    default_lr = {"adam": 3e-2, "sgd": 0.5}
    spins = True
    quadratic = True

    def prompt_items(self, D: int, N: int) -> int:
        return 2 * (D + 1)  # (u, q)


@register_model
@dataclass(frozen=True)
class FLAConfig(ModelConfig):
    """Full linear attention (:class:`FLA`, eq. 41); no hyperparameters."""

    name = "fla"
    model_class = FLA
    default_lr = {"adam": 3e-2, "sgd": 0.5}

    def prompt_items(self, D: int, N: int) -> int:
        return (D + 1) ** 2 + D + 1  # (X X^T, q)


@register_model
@dataclass(frozen=True)
class MHLAConfig(ModelConfig):
    """Multi-head linear attention (:class:`MHLA`) with ``M`` heads."""

    M: int = 10
    name = "mhla"
    model_class = MHLA
    default_lr = {"adam": 3e-2, "sgd": 0.2}
    _parameter_constraints = {"M": Int(1)}

    def prompt_items(self, D: int, N: int) -> int:
        return _pairs_count(D) + D + 1  # (upper triangle of X X^T, q)


@register_model
@dataclass(frozen=True)
class SAConfig(ModelConfig):
    """Single-head softmax attention (:class:`SA`, eq. 42-44) of inner size ``H``."""

    H: int = 32
    name = "sa"
    model_class = SA
    default_lr = {"adam": 3e-3, "sgd": 0.1}
    _parameter_constraints = {"H": Int(1)}

    def prompt_items(self, D: int, N: int) -> int:
        return 2 * (D + 1) * (N + 1)  # the tokens in both layouts (_token_layouts)


@register_model
@dataclass(frozen=True)
class TFConfig(ModelConfig):
    """One transformer block (:class:`TF`, eq. 45): SA of inner size and MLP width ``H``."""

    H: int = 32
    name = "tf"
    model_class = TF
    default_lr = {"adam": 3e-3, "sgd": 0.05}
    _parameter_constraints = {"H": Int(1)}

    def prompt_items(self, D: int, N: int) -> int:
        return 2 * (D + 1) * (N + 1)  # the tokens in both layouts (_token_layouts)

    def step_items(self, D: int, N: int) -> int:
        return 3 * (D + 1) * (N + 1) + 2 * (D + 1) ** 2 + 4 * self.H


@register_model
@dataclass(frozen=True)
class SeparateSLAConfig(ModelConfig):
    """SLA with separate ``W_Q, W_K`` (:class:`SeparateSLA`; supplement Fig. S1) of key
    size ``d_k`` (None: D + 1). Adam 1e-2 is the authors' Fig. S1 rate."""

    d_k: int | None = None
    name = "sla-separate"
    model_class = SeparateSLA
    quadratic = True
    default_lr = {"adam": 1e-2, "sgd": 0.5}
    _parameter_constraints = {"d_k": OrNone(Int(1))}

    def prompt_items(self, D: int, N: int) -> int:
        return 2 * (D + 1)  # (u, q), as SLA
