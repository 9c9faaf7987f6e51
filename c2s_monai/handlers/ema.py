"""The EMA of the weights: :class:`WarmupEMAHandler`, ignite's ``EMAHandler`` with the recipe's
EMA warm-up (:class:`EMAWarmup`, docs/method.md section 7), attachable with ``attach(engine)`` alone.
"""

from __future__ import annotations

from ignite.engine import Engine, Events
from ignite.handlers import EMAHandler


class EMAWarmup:
    """EMA momentum ``max(momentum, 9 / (10 + n))`` at iteration ``n``.

    The decay ``min(1 - momentum, (1 + n) / (10 + n))`` of common EMA-with-warm-up practice:
    early on the average follows the fast-moving weights instead of lagging thousands of
    steps behind them (``docs/method.md`` section 7).
    """

    def __init__(self, momentum: float) -> None:
        if not 0 < momentum <= 1:
            raise ValueError(f"ema momentum must be in (0, 1], got {momentum!r}.")
        self.momentum = momentum

    def __call__(self, iteration: int) -> float:
        return max(self.momentum, 9.0 / (10.0 + iteration))


class WarmupEMAHandler(EMAHandler):
    """ignite ``EMAHandler`` whose momentum follows :class:`EMAWarmup` (``max(momentum, 9 / (10 + n))``).

    ``attach(engine)`` attaches the momentum schedule first, so each iteration's EMA update uses
    that iteration's momentum, then the EMA update itself. ``n`` is the trainer's iteration
    count (not a count of the handler's own calls, as in ignite's ``LambdaStateScheduler``), so a
    resumed run goes on with the momentum where the checkpoint left it.
    """

    def attach(self, engine, name: str = "ema_momentum", warn_if_exists: bool = False, event=Events.ITERATION_COMPLETED) -> None:
        warmup = EMAWarmup(self.momentum)

        def set_momentum(engine: Engine) -> None:
            setattr(engine.state, name, warmup(engine.state.iteration))

        set_momentum(engine)
        engine.add_event_handler(event, set_momentum)
        super().attach(engine, name=name, warn_if_exists=warn_if_exists, event=event)
