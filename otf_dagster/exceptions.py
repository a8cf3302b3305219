"""The project's exceptions: one base class, messages that name the value and what to do."""

from __future__ import annotations

import reprlib


class OtfError(Exception):
    """Base class of every error this project raises on purpose.

    The CLI prints ``str(error)`` as one line and exits non-zero; anything else is a bug.
    """


# --- configuration -------------------------------------------------------------------------


class ConfigError(OtfError):
    """A setting is missing or malformed (environment, YAML, resource config)."""


# --- the task store ------------------------------------------------------------------------


class StoreError(OtfError):
    """The task database refused or failed an operation."""


class DatabaseUnavailable(StoreError):
    """The task database cannot be reached; retriable once it is back."""


class InvalidTaskType(StoreError):
    """A task type definition is malformed (bad name, interval, handler, template...)."""


class UnknownTaskType(StoreError):
    """A task type that does not exist, or is soft-deleted, was named."""


class UnknownTask(StoreError):
    """A task id that does not exist was named."""


class StaleTransition(StoreError):
    """A state change was refused: the task is no longer in the state/attempt the writer expected.

    This is the fencing that keeps a stale runner or a second manager from overwriting newer state.
    """


class InvalidReport(StoreError):
    """A service's progress report was refused (unknown state, moving backwards, ...)."""


# --- feeds -------------------------------------------------------------------------------


class FeedError(OtfError):
    """A sports feed failed to answer usefully."""


class RetriableFeedError(FeedError):
    """A failure that may pass: connection errors, timeouts, 429, 5xx."""


class FeedRefused(RetriableFeedError):
    """The feed refused this client (a 403 with an HTML body: a CDN's edge page, not the
    feed's answer): an outage of the feed for this client, never an unknown game."""


class FatalFeedError(FeedError):
    """A failure that will not pass by retrying: 4xx other than 429, a body of the wrong shape."""


class UnknownGame(FatalFeedError):
    """The feed does not know this game id (404 or an error body)."""


class MalformedFeed(FatalFeedError):
    """The feed answered, but not with the JSON shape expected; names the URL and an excerpt."""


class HostBusy(OtfError):
    """Every request turn of a feed host is taken (``OTF_FEED_MAX_PER_HOST``): a runner pool's
    poll is not made now, and the pool holds the task back until the host has a free turn
    (a worker thread never waits on a full host). Not a failed poll: nothing is counted."""

    def __init__(self, host: str) -> None:
        super().__init__(f"feed host {host} is at its limit of requests at a time; polled later")
        self.host = host


# --- polls ---------------------------------------------------------------------------------


class PollError(OtfError):
    """One poll could not be turned into a result (an expression that errors on the document,
    a value that cannot be stored, a spawned key that is not a key): counted toward the type's
    ``max_consecutive_errors``, like a feed error."""


# --- views -------------------------------------------------------------------------------


class NothingToPlot(OtfError):
    """A chart was asked for before there is anything to draw (no score yet)."""


# --- quoting values in messages ------------------------------------------------------------

SHOWN_CHARS = 60


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """A value's repr cut to ``limit`` characters with an ellipsis: a message names the value
    without echoing a 10 KB key or an alias-expanded YAML document back. ``reprlib`` bounds the
    work too (a few items per container, a few levels deep)."""
    r = reprlib.Repr()
    r.maxstring = r.maxother = limit + 2
    r.maxlevel = 3
    text = r.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
