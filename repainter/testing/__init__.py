"""Test helpers that other projects (and repainter's own tests and benchmarks) can reuse.

:mod:`repainter.testing.openai_server` is an OpenAI-compatible chat-completions server on
loopback with canned, schema-valid replies, fixed latency, counters and seeded fault injection;
:mod:`repainter.testing.t2i_faults` wraps a T2I backend to fail on purpose.
"""

from repainter.testing.openai_server import (
    ALL_KINDS,
    EXTRA_KINDS,
    KINDS,
    PROFILES,
    FaultPlan,
    OpenAICompatServer,
    ServerProfile,
    canned_reply,
)

__all__ = ["ALL_KINDS", "EXTRA_KINDS", "KINDS", "FaultPlan", "OpenAICompatServer", "PROFILES",
           "ServerProfile", "canned_reply"]
