"""The parts of the ``devin-async`` command; ``devin_async.cli`` is its public entry point.

Each command module has a ``register(add)`` function that declares its commands with
``add(name, summary, handler)`` and their options; ``parser.COMMAND_MODULES`` lists the
modules in the order of ``devin-async --help``. A new command is a new module with a
``register`` function, added to that tuple.
"""
