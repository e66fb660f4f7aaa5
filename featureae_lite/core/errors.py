"""The package's error type for bad user input.

Every check of an argument, option, file or configuration raises :class:`InputError`, with a message
that names what is wrong (the file, the option, the value) and what is accepted. It subclasses
``ValueError``, so ``except ValueError`` keeps working; the command line turns it into one line and
exit status 2, while any other exception (a bug in the package, numpy or torch) keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input given to the package: an option, argument, file or configuration it cannot use."""
