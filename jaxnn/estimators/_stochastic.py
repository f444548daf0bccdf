"""A stochastic fit (solver "sgd" or "adam"): :func:`jaxnn.fit` runs the epochs, the host keeps
scikit-learn's records.

Most fits are one engine call: a compiled scan over epochs of minibatches that stops on the device
by scikit-learn's rule (``n_iter_no_change + 1`` epochs in a row not better than the best by
``tol``). When the rule needs the host between epochs -- ``learning_rate="invscaling"`` or
``"adaptive"`` (the rate changes per epoch), ``sample_weight`` with several minibatches
(scikit-learn's monitored loss weights minibatches by their row counts), a user's validation set
-- the same kind of program runs one epoch per call and the host applies the rule. Both give
scikit-learn's numbers (tests/test_sklearn_parity.py, tests/test_estimators_extras.py).
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from jaxnn import engine, models
from jaxnn.errors import InputError
from jaxnn.estimators import _network

_CHUNK_WORK = 1 << 27  # multiply-adds of the forward pass per compiled call (see _chunk_epochs)

_NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large values "
               "and need to be preprocessed.")

def _chunk_epochs(epochs: int, n: int, batch: int, n_params: int) -> int:
    """Epochs per compiled call of a fit: about ``_CHUNK_WORK`` forward multiply-adds, a power of two.

    Each call of the engine's compiled chunk has a fixed cost of dispatch and host bookkeeping, so
    a small model takes as many epochs per call as fit in ``_CHUNK_WORK`` (docs/development.md). A power
    of two, and at most the power of two at or above ``epochs``: nearby ``max_iter`` values and CV
    folds share one program (epochs past the end are skipped, not computed).
    """
    per_epoch = engine.steps_per_epoch(n, batch) * min(batch, n) * n_params
    return engine.epochs_per_call(epochs, at_least=_CHUNK_WORK // max(per_epoch, 1))


class _Optimizer:
    """What scikit-learn's tests read of its optimizer: the current ``learning_rate``."""

    def __init__(self, learning_rate: float) -> None:
        self.learning_rate = learning_rate


@functools.cache
def _score_fn(out_activation: str, kind: str) -> Any:
    """``-score(z, Y, w)`` of the network's linear output z, the engine's monitored value with a
    validation set (lower is better).

    The score is scikit-learn's ``score`` on the network's outputs: weighted accuracy (subset
    accuracy for multilabel; a single class is always right) or R^2 averaged over the outputs (a
    constant target scores 1 if predicted exactly, else 0, as ``r2_score``'s ``force_finite``);
    NaN when a prediction is not finite, as scikit-learn's.
    """

    def negative_score(z: jax.Array, Y: jax.Array, w: jax.Array) -> jax.Array:
        out = _network.output(out_activation, z)
        total = jnp.sum(w)
        if kind == "single":
            hits = jnp.ones_like(w)
        elif kind == "multiclass":
            hits = (jnp.argmax(out, axis=1) == jnp.argmax(Y, axis=1)).astype(w.dtype)
        elif kind in ("binary", "multilabel"):
            hits = jnp.all((out > 0.5) == (Y > 0.5), axis=1).astype(w.dtype)
        if kind != "regression":
            return -jnp.sum(w * hits) / total
        mean = jnp.sum(w[:, None] * Y, axis=0) / total
        num = jnp.sum(w[:, None] * jnp.square(Y - out), axis=0)
        den = jnp.sum(w[:, None] * jnp.square(Y - mean[None, :]), axis=0)
        r2 = jnp.where(den > 0, 1 - num / jnp.where(den > 0, den, 1), jnp.where(num == 0, 1.0, 0.0))
        finite = jnp.all(jnp.isfinite(jnp.where(w[:, None] > 0, out, 0.0)))
        return jnp.where(finite, -jnp.mean(r2), jnp.nan)

    return negative_score


@functools.cache
def _val_fn(activation: str, out_activation: str, kind: str, gradients: str) -> Any:
    """The engine's ``val_fn(params, X, Y, w, l2)``: the negative score (cached: one program)."""
    act = _network.hidden_activation(activation, "autodiff")
    score = _score_fn(out_activation, kind)

    def val_fn(params: Any, X: jax.Array, Y: jax.Array, w: jax.Array, l2: jax.Array) -> jax.Array:
        return score(models.network(params, X, act), Y, w)

    return val_fn


@functools.lru_cache(maxsize=64)
def _jitted(fn: Any) -> Any:
    return jax.jit(fn)


class _Run:
    """One stochastic fit's bookkeeping: scikit-learn's attributes updated epoch by epoch."""

    def __init__(self, est: Any, X: np.ndarray, Y: np.ndarray, w: np.ndarray, val: Any, params: Any,
                 opt_state: Any, seed: int, dtype: np.dtype, *, epochs: int, early: bool, kind: str,
                 incremental: bool, user_val: bool) -> None:
        self.user_val = user_val  # a validation set passed to fit: its loss is recorded too
        self.est, self.X, self.Y, self.w, self.params, self.dtype = est, X, Y, w, params, dtype
        self.epochs, self.early, self.incremental, self.seed = epochs, early, incremental, seed
        self.n = X.shape[0]
        self.B = est._batch(self.n)
        self.has_val = val is not None
        self.val = None
        if val is not None:  # padded to a row bucket, weight-0 rows the score ignores
            N = engine.row_bucket(val[0].shape[0])
            self.val = tuple(engine.pad_rows(np.asarray(a, dtype), N, fill=0) for a in val)
            self.val_fn = _val_fn(est.activation, est.out_activation_, kind, est.gradients)
        self.optimizer = est._make_optimizer()
        self.opt_state = opt_state
        self.loss_fn = _network.loss_fn(est.activation, est.out_activation_, est.gradients)
        self.curve: list[float] = []
        self.scores: list[float] = []
        self.val_losses: list[float] = []
        self.stopped = False
        self.best_params: Any = None
        self.diverged = False
        self.host_count: int | None = None

    # --- the engine ----------------------------------------------------------------------

    def _state(self, lr: float, *, track_best: bool) -> engine.TrainState:
        """The run's first state: the parameters, the optimizer state (fresh or continued), the data order."""
        est = self.est
        if self.opt_state is None:
            shapes = engine.opt_state_shapes(self.optimizer, self.params)
            self.opt_state = jax.tree_util.tree_map(lambda a: np.zeros(a.shape, a.dtype), shapes)
        opt_state = jax.tree_util.tree_map(lambda a, t: np.asarray(a, t.dtype), self.opt_state,
                                           engine.opt_state_shapes(self.optimizer, self.params))
        if self.incremental and hasattr(est, "_key_data"):  # another order than the last call's
            data = np.asarray(est._key_data, np.uint32).copy()
            data[0] = np.uint32((int(data[0]) + int(est.t_)) % 2**32)
        else:
            data = np.asarray([0, self.seed], np.uint32)
        key = jax.random.wrap_key_data(data)  # type: ignore[arg-type]  # key(seed), compiling nothing
        est._key_data = np.asarray([0, self.seed], np.uint32) if not self.incremental else data
        return engine.init_state(self.params, self.optimizer, key, track_best=track_best,
                                 opt_state=est._hyperparams(opt_state, lr, self.dtype))

    def _engine_fit(self, state: engine.TrainState, epochs: int, *, patience: int | None,
                    callback: Any = None, chunk: int | None = None) -> engine.FitResult:
        est = self.est
        n_params = sum(int(np.size(p)) for p in jax.tree_util.tree_leaves(self.params))
        return engine._fit(
            self.loss_fn, state.params, (self.X.astype(self.dtype), self.Y.astype(self.dtype)),
            optimizer=self.optimizer, batch_size=200 if est.batch_size == "auto" else int(est.batch_size),
            epochs=epochs, shuffle=bool(est.shuffle), sample_weight=self.w, val_data=self.val,
            val_fn=self.val_fn if self.has_val else None, patience=patience,
            tol=float(est.tol), restore_best=self.early and patience is not None, state=state,
            callback=callback, chunk_epochs=chunk or _chunk_epochs(epochs, self.n, self.B, n_params),
            loss_args=(float(est.alpha),), pass_weights=True, raise_on_divergence=False)

    def _epoch_losses(self, step_losses: np.ndarray) -> list[float]:
        """scikit-learn's per-epoch loss: minibatch losses weighted by their real row counts / n."""
        spe = engine.steps_per_epoch(self.n, self.B)
        sizes = np.full(spe, self.B, dtype=np.float64)
        sizes[-1] = self.n - (spe - 1) * self.B
        full = len(step_losses) // spe
        per_epoch = np.asarray(step_losses[: full * spe], np.float64).reshape(full, spe) @ sizes / self.n
        return [float(v) for v in per_epoch]

    def _print_epoch(self, loss: float, score: float | None) -> None:
        print(f"Iteration {len(self.curve)}, loss = {loss:.8f}", flush=True)
        if score is not None:
            print(f"Validation score: {score:f}", flush=True)

    def _record(self, result: engine.FitResult, known: int) -> None:
        """Append the epochs of ``result`` past the ``known`` ones."""
        losses = self._epoch_losses(result.history.train_loss)[known:]
        scores = [-float(v) for v in np.asarray(result.history.val_loss)][known:] if self.has_val else []
        for i, loss in enumerate(losses):
            self.curve.append(loss)
            if self.has_val:
                self.scores.append(scores[i])
            if self.est.verbose:
                self._print_epoch(loss, scores[i] if self.has_val else None)

    def device(self) -> None:
        """One engine call: scikit-learn's rule applied on the device (constant rate, even weights)."""
        est = self.est
        patience = (None if (self.incremental or est.n_iter_no_change == np.inf)
                    else int(est.n_iter_no_change) + 1)
        state = self._state(float(est.learning_rate_init), track_best=self.early and patience is not None)
        if patience is not None:  # warm_start carries the best value and the count, as scikit-learn
            best = self._best_monitored()
            if math.isfinite(best):
                state = state._replace(best_loss=jnp.asarray(best, state.best_loss.dtype),
                                       bad_epochs=jnp.asarray(est._no_improvement_count, jnp.int32))
        printed = [0]

        def report(info: engine.ChunkInfo) -> None:  # scikit-learn's lines, as each epoch ends
            scores = -np.asarray(info.val_loss, np.float64)
            for i, loss in enumerate(self._epoch_losses(info.train_loss)):
                printed[0] += 1
                print(f"Iteration {printed[0]}, loss = {loss:.8f}", flush=True)
                if self.has_val:
                    print(f"Validation score: {scores[i]:f}", flush=True)

        verbose = bool(est.verbose)
        result = self._engine_fit(state, self.epochs, patience=patience, callback=report if verbose else None,
                                  chunk=1 if verbose else None)
        verbose_was, est.verbose = est.verbose, False  # printed by report
        try:
            self._record(result, 0)
        finally:
            est.verbose = verbose_was
        self.stopped = result.stopped_early
        self.diverged = result.diverged_step is not None
        self._keep(result)
        if self.early and self.scores:
            self.best_params = jax.device_get(result.params)

    def _keep(self, result: engine.FitResult) -> None:
        self.params = jax.device_get(result.state.params)
        self.opt_state = jax.device_get(result.state.opt_state)

    def host_loop(self) -> None:
        """One engine call per epoch, scikit-learn's rule and learning-rate schedule on the host."""
        est = self.est
        lr = est._optimizer.learning_rate
        state = self._state(lr, track_best=False)
        best = self._best_monitored()
        count = est._no_improvement_count if not self.incremental else 0
        for epoch in range(self.epochs):
            opt_state = est._hyperparams(jax.device_get(state.opt_state), lr, self.dtype)
            state = state._replace(opt_state=opt_state)
            result = self._engine_fit(state, epoch + 1, patience=None, chunk=1)
            if result.diverged_step is not None:
                self.diverged = True
                break
            self._record(result, 0)
            state = result.state
            self._keep(result)
            est.t_ += self.n
            monitored = -self.scores[-1] if self.early else self.curve[-1]
            count = count + 1 if not monitored <= best - est.tol else 0
            if monitored < best:
                best = monitored
                if self.early:
                    self.best_params = self.params
            if self.user_val:
                self.val_losses.append(self._val_loss())
            if est.solver == "sgd" and est.learning_rate == "invscaling":
                lr = float(est.learning_rate_init) / (est.t_ + 1) ** float(est.power_t)
            if not self.incremental and count > est.n_iter_no_change:
                if est.solver == "sgd" and est.learning_rate == "adaptive" and lr > 1e-6:  # trigger_stopping
                    lr /= 5.0
                    count = 0
                    if est.verbose:
                        print(est._stop_message(self.early) + f" Setting learning rate to {lr:f}", flush=True)
                else:
                    if est.verbose:
                        too_small = est.learning_rate == "adaptive" and est.solver == "sgd"
                        end = " Learning rate too small. Stopping." if too_small else " Stopping."
                        print(est._stop_message(self.early) + end, flush=True)
                    self.stopped = True
                    self._quiet_stop = True
                    break
        est._optimizer.learning_rate = lr
        self.host_count = count
        self.opt_state = jax.device_get(state.opt_state)
        est.t_ -= self.n * len(self.curve)  # finish() counts them

    def _best_monitored(self) -> float:
        """The best monitored value so far (lower is better; inf when none), carried over by warm_start."""
        est = self.est
        best = est.best_validation_score_ if self.early else est.best_loss_
        if best is None:
            return math.inf
        return -float(best) if self.early else float(best)

    def _val_loss(self) -> float:
        """The validation set's objective at the current parameters (the loss of ``loss_curve_``)."""
        Xv, Yv, wv = self.val  # type: ignore[misc]
        fn = _jitted(self.loss_fn)
        l2 = jnp.asarray(float(self.est.alpha), self.dtype)
        rows = np.asarray(fn(self.params, jnp.asarray(Xv), jnp.asarray(Yv), l2, jnp.asarray(wv)))
        return float(np.sum(np.asarray(wv, np.float64) * rows) / np.sum(np.asarray(wv, np.float64)))

    _quiet_stop = False

    def finish(self) -> None:
        """scikit-learn's attributes from the epochs run, its counters and its warnings."""
        est = self.est
        if self.diverged:  # scikit-learn trains on with NaN to max_iter; so do its records
            missing = self.epochs - len(self.curve)
            self.curve += [math.nan] * missing
            if self.has_val:
                self.scores += [math.nan] * missing
        est.n_iter_ = len(self.curve)
        est.t_ += self.n * len(self.curve)
        est.loss_curve_ = [*est.loss_curve_, *self.curve]
        est.loss_ = est.loss_curve_[-1] if est.loss_curve_ else math.nan
        # scikit-learn's _update_no_improvement_count, on the host, from the recorded values
        count = est._no_improvement_count
        if self.early:
            best = -self._best_monitored()
            for score in self.scores:
                count = count + 1 if score < best + est.tol else 0
                best = max(best, score) if not math.isnan(score) else best
            est.best_validation_score_ = best
        else:
            best = self._best_monitored()
            for loss in self.curve:
                count = count + 1 if loss > best - est.tol else 0
                best = min(best, loss) if not math.isnan(loss) else best
            est.best_loss_ = best
        if self.has_val:
            est.validation_scores_ = [*(est.validation_scores_ or []), *self.scores]
            if not self.early:
                est.best_validation_score_ = max([est.best_validation_score_ or -math.inf, *self.scores])
        if self.user_val:
            est.validation_loss_curve_ = [*getattr(est, "validation_loss_curve_", []), *self.val_losses]
        # the host loop's count saw "adaptive" reset it; the device path's equals the recount
        est._no_improvement_count = count if self.host_count is None else self.host_count
        if est.solver == "adam":  # scikit-learn's learning_rate: the step's bias-corrected rate
            t = int(np.asarray(self.opt_state.inner_state.count))
            b1, b2 = float(est.beta_1), float(est.beta_2)
            if t > 0:
                rate = float(est.learning_rate_init) * math.sqrt(1 - b2**t) / (1 - b1**t)
                est._optimizer.learning_rate = rate
        if est.verbose and self.stopped and not self._quiet_stop:
            print(est._stop_message(self.early) + " Stopping.", flush=True)
        params = self.params
        if self.early and self.best_params is not None:
            params = self.best_params
        est.coefs_ = [np.asarray(p["W"]) for p in params]
        est.intercepts_ = [np.asarray(p["b"]) for p in params]
        if self.diverged and not self.early:
            raise InputError(_NON_FINITE)
        est._opt_state = self.opt_state
        if not self.incremental and not self.stopped and est.n_iter_ == est.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=5)
