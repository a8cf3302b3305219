"""The vocabulary every floor above speaks: tasks and task types (``tasks``), the URL a type
polls (``urls``), and what one poll is given and gives back (``poll``). It imports nothing of
the project but ``exceptions``; ``feeds``, ``handlers`` and ``core`` build on it."""
