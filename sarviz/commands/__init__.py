"""CLI sub-commands: every module here defines ``register(subparsers)``.

``sarviz.cli`` discovers the modules, so adding a command means adding a module here.
Each ``register`` adds one or more sub-parsers and sets ``func`` on them: a callable
taking the parsed ``argparse.Namespace`` and returning an exit code.
"""
