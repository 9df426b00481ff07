"""The ``digitlab`` command: a thin shell over the library. One function per subcommand; its
docstring is its ``--help``. User mistakes print one line and exit 2, never a traceback."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``digitlab`` console script. Returns the exit code."""
    try:
        import typer
    except ImportError:
        sys.stderr.write("digitlab: the command line needs its extra: pip install 'digitlab[cli]'\n")
        return 2

    from rich.markup import escape

    from ..errors import DigitlabError
    from .app import app, err_console

    def error(message: str) -> None:
        err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)

    try:
        result = app(args=argv, prog_name="digitlab", standalone_mode=False)
    except DigitlabError as e:
        error(str(e))
        return 2
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except typer.Exit as e:
        return e.exit_code
    except typer.TyperException as e:  # usage errors: bad option, missing argument, ...
        ctx = getattr(e, "ctx", None)
        error(e.format_message() + (f" (see '{ctx.command_path} --help')" if ctx else ""))
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except BrokenPipeError:  # whoever read our output stopped (| head): end quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return result if isinstance(result, int) else 0


def run() -> None:  # pragma: no cover - console script wrapper
    sys.exit(main())
