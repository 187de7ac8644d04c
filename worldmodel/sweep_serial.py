"""The sweep without Ray: the few Ray calls ``worldmodel.sweep.drive`` makes, done in this process.

    results = run_trials(trials, out, backend="serial")     # each attempt in turn, the same rules as on Ray
"""

from __future__ import annotations


class SerialRay:
    """The few Ray calls ``drive`` makes, done in this process one attempt at a time: ``remote`` queues
    an attempt, ``wait`` runs the oldest queued one to its end, ``cancel`` drops one not yet run."""

    class exceptions:  # noqa: N801 - where drive looks for Ray's error class
        class RayError(Exception):
            """An attempt that raised, or one cancelled before or while it ran."""

    def is_initialized(self) -> bool:
        return True  # nothing to start or shut down

    def remote(self, max_retries: int = 0):
        return lambda fn: _SerialTask(fn)

    def wait(self, refs: list[_SerialAttempt], num_returns: int = 1, timeout: float | None = None):
        """The first ``num_returns`` attempts to end, running them here in order; with a timeout (the
        driver stopping) nothing new runs."""
        for ref in refs:
            if len([r for r in refs if r.ended]) >= num_returns or timeout is not None:
                break
            if not ref.ended:
                ref.run()
        done = [ref for ref in refs if ref.ended]
        return done[:num_returns], [ref for ref in refs if ref not in done[:num_returns]]

    def get(self, ref: _SerialAttempt):
        if ref.error is not None:
            raise ref.error
        return ref.result

    def cancel(self, ref: _SerialAttempt) -> None:
        if not ref.ended:
            ref.error, ref.ended = SerialRay.exceptions.RayError("cancelled"), True


class _SerialTask:
    def __init__(self, fn) -> None:
        self.fn = fn

    def options(self, **resources) -> _SerialTask:
        return self  # one attempt at a time takes the whole machine

    def remote(self, *args) -> _SerialAttempt:
        return _SerialAttempt(self.fn, args)


class _SerialAttempt:
    def __init__(self, fn, args) -> None:
        self.fn, self.args = fn, args
        self.ended, self.result, self.error = False, None, None

    def run(self) -> None:
        try:
            self.result = self.fn(*self.args)
        except KeyboardInterrupt:  # Ctrl-C: the attempt checkpointed (run_attempt saw to it); the driver stops
            self.error = SerialRay.exceptions.RayError("interrupted")
            raise
        except Exception as err:  # noqa: BLE001 - as a Ray task's failure: the driver decides
            self.error = SerialRay.exceptions.RayError(repr(err))
        finally:
            self.ended = True
