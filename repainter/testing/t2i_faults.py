"""A T2I backend wrapper that fails on purpose, for tests of crash safety and resume."""

from __future__ import annotations


class CrashOnce:
    """Wraps a T2I backend; raises on its ``crash_on_call``-th ``generate`` call, once.

    >>> class Echo:
    ...     def generate(self, prompts, seeds): return list(prompts)
    >>> t2i = CrashOnce(Echo(), crash_on_call=2)
    >>> t2i.generate(["a"], [1])
    ['a']
    >>> t2i.generate(["b"], [2])
    Traceback (most recent call last):
    RuntimeError: simulated crash in the T2I worker
    >>> t2i.generate(["c"], [3])
    ['c']
    """

    def __init__(self, inner, crash_on_call: int):
        self.inner, self.crash_on_call, self.calls = inner, crash_on_call, 0

    def generate(self, prompts, seeds):
        self.calls += 1
        if self.calls == self.crash_on_call:
            raise RuntimeError("simulated crash in the T2I worker")
        return self.inner.generate(prompts, seeds)

    def identity(self):
        return self.inner.identity()

    def close(self):  # the wrapped backend is closed by its owner, not here
        pass
